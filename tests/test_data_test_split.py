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

    # The evaluation scores the split the config names (finalize's test scoring), the validation one otherwise.
    from data.layout import tokenizer_dir
    from flows.finalize import has_test_split
    from training.evaluate import score_validation

    seen = []
    data = {"shard_dir": str(shard_dir("mine", tmp_path)), "tokenizer_dir": str(tokenizer_dir("mine", tmp_path))}
    for split in ("val", "test"):
        cfg = {"data": data, "train": {"eval_tokens": 64, "eval_batch_size": 4, "seq_len": 16, "eval_split": split}}
        result = score_validation(cfg, lambda inputs, targets: seen.append(inputs.copy()) or np.ones(targets.shape))
        assert result["eval_split"] == split and result["eval_tokens"] == 64
    first_val, first_test = seen[0], seen[len(seen) // 2]
    assert np.array_equal(first_val[0], validation[:16]) and np.array_equal(first_test[0], held_out[:16])
    assert has_test_split({"data": data})


def test_a_tiny_corpus_still_gets_a_test_document(tmp_path):
    _fill(tmp_path / "my_corpus")
    meta = build_corpus("mine", tmp_path, spec={**SPEC, "test_fraction": 0.0001})  # no hash falls in so narrow a range
    assert meta["documents"]["test"] == 1 and meta["documents"]["val"] >= 1 and meta["documents"]["train"] >= 1


def test_the_training_loader_never_opens_the_held_out_test_split(tiny_bundled_with_test_split, monkeypatch):
    """A dataset with a test split: the training loader reads the training shards and nothing else (issue 28: no
    test built a training loader on such a dataset, so training could have read the test split unnoticed)."""
    import data.loader as loader
    from data.loader import TrainLoader

    manifest = tiny_bundled_with_test_split["manifest"]
    shard_dir = tiny_bundled_with_test_split["shard_dir"]
    by_split = {}
    for entry in manifest["shards"]:
        by_split.setdefault(entry["split"], []).append(entry["file"])
    assert by_split["test"] and by_split["val"] and by_split["train"]  # the fixture has all three
    opened = []
    real_open = loader.open_shard
    monkeypatch.setattr(loader, "open_shard", lambda path, entry, m: opened.append(path.name) or real_open(path, entry, m))
    train = TrainLoader(shard_dir, batch_size=2, seq_len=32, seed=0)
    assert opened == by_split["train"] and [path.name for path in train.shard_files] == by_split["train"]
    assert train.train_tokens == manifest["tokens"]["train"]
    # A whole pass over the training split: every token it yields is from the training shards (the test split's
    # documents start at other offsets, so the pieces it indexes cover exactly the training tokens).
    assert int(train.piece_data_len.sum()) == manifest["tokens"]["train"]
    for _ in range(3):
        next(train)
    assert opened == by_split["train"]  # batches open nothing more
