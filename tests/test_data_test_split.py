"""The held-out test split: carved from training by the content hash, validation untouched, encoded with the
same tokenizer into shards with their sha256 in the manifest; absent (and the data unchanged) when off."""
from __future__ import annotations

import numpy as np

from data.corpus import build_corpus, iter_corpus_texts
from data.layout import corpus_dir, shard_dir
from data.loader import validation_tokens
from data.stages import run_shards, run_tokenizer
from tests.test_data_local import SPEC, _fill


def _texts(root, split):
    return sorted(text for batch in iter_corpus_texts(root / "datasets" / "mine" / "corpus", split) for text in batch)


def test_test_split_takes_training_documents_only_and_gets_its_own_shards(tmp_path):
    _fill(tmp_path / "my_corpus")
    spec = {**SPEC, "shard_tokens": 100000, "tokenizer_train_chars": None}
    before = build_corpus("mine", tmp_path, spec=spec)
    train_before, val_before = _texts(tmp_path, "train"), _texts(tmp_path, "val")
    assert set(before["documents"]) == {"train", "val"}  # off: meta.json as it always was

    meta = build_corpus("mine", tmp_path, spec={**spec, "test_fraction": 0.3})
    test = _texts(tmp_path, "test")
    assert test and meta["documents"]["test"] == len(test)
    assert _texts(tmp_path, "val") == val_before  # validation is exactly what it was
    assert sorted(_texts(tmp_path, "train") + test) == train_before  # test came out of training

    run_tokenizer("mine", tmp_path, spec={**spec, "test_fraction": 0.3})
    manifest = run_shards("mine", tmp_path, spec={**spec, "test_fraction": 0.3})
    tests = [entry for entry in manifest["shards"] if entry["split"] == "test"]
    assert tests and all(len(entry["sha256"]) == 64 for entry in tests)
    assert manifest["tokens"]["test"] > 0 and manifest["documents"]["test"] == len(test)
    held_out = validation_tokens(shard_dir("mine", tmp_path), "test")
    validation = validation_tokens(shard_dir("mine", tmp_path))
    assert held_out.size == manifest["tokens"]["test"] and validation.size == manifest["tokens"]["val"]
    assert not np.array_equal(held_out[:50], validation[:50])
    assert (corpus_dir("mine", tmp_path) / "test").is_dir()
