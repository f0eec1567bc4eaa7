"""Shards and manifest: layout, verification failures are one clear sentence, nothing is deleted."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from data.errors import DataError
from data.shards import compute_data_version, data_version, read_manifest, verify_shards


@pytest.fixture()
def dataset_copy(tiny_dataset, tmp_path):
    """A private copy of the tiny dataset that a test may damage."""
    target = tmp_path / "tiny"
    shutil.copytree(tiny_dataset["dir"], target)
    return target


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_manifest_content(tiny_dataset):
    manifest = tiny_dataset["manifest"]
    assert manifest["dataset"] == "tiny" and manifest["dtype"] == "<u2" and manifest["vocab_size"] == 512
    splits = [entry["split"] for entry in manifest["shards"]]
    assert splits.count("train") >= 2 and "val" in splits
    for entry in manifest["shards"]:
        tokens = np.fromfile(tiny_dataset["shard_dir"] / entry["file"], dtype="<u2")
        assert tokens.size == entry["tokens"]
        # Shards close before they would pass shard_tokens; only a single longer document gets one of its own.
        assert entry["tokens"] <= manifest["shard_tokens"] or entry["documents"] == 1, entry
        assert tokens[0] == manifest["bos_id"]
        assert int((tokens == manifest["bos_id"]).sum()) == entry["documents"]
    assert manifest["documents"]["val"] > 0
    assert len(manifest["data_version"]) == 12
    assert data_version(tiny_dataset["shard_dir"]) == manifest["data_version"] == compute_data_version(manifest)


def test_verify_passes_on_a_good_build(tiny_dataset):
    assert verify_shards(tiny_dataset["shard_dir"]) == tiny_dataset["manifest"]


def test_flipped_byte_is_caught(dataset_copy):
    shard = dataset_copy / "shards" / "train_00001.bin"
    payload = bytearray(shard.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    shard.write_bytes(bytes(payload))
    before = _files(dataset_copy / "shards")
    with pytest.raises(DataError) as error:
        verify_shards(dataset_copy / "shards")
    message = str(error.value)
    assert "train_00001.bin" in message and "sha256" in message and "dvc repro" in message and "dataset=tiny" in message
    assert message.count(". ") == 0  # one sentence
    assert _files(dataset_copy / "shards") == before  # nothing deleted


def test_truncated_shard_is_caught(dataset_copy):
    shard = dataset_copy / "shards" / "val_00000.bin"
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(DataError, match="val_00000.bin.*truncated"):
        verify_shards(dataset_copy / "shards")
    assert shard.exists()


def test_missing_shard_is_caught(dataset_copy):
    (dataset_copy / "shards" / "train_00000.bin").unlink()
    with pytest.raises(DataError, match="train_00000.bin is missing"):
        verify_shards(dataset_copy / "shards")


def test_tokenizer_mismatch_is_caught(dataset_copy):
    tokenizer_file = dataset_copy / "tokenizer" / "tokenizer.json"
    config = json.loads(tokenizer_file.read_text())
    config["model"]["merges"] = config["model"]["merges"][:-1]  # a different tokenizer, still valid JSON
    tokenizer_file.write_text(json.dumps(config))
    with pytest.raises(DataError, match="not the one the shards"):
        verify_shards(dataset_copy / "shards")
    assert tokenizer_file.exists()


def test_edited_manifest_is_caught(dataset_copy):
    path = dataset_copy / "shards" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["tokens"]["train"] += 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="edited"):
        read_manifest(dataset_copy / "shards")


def test_validation_documents_are_not_in_training(tiny_dataset):
    import pyarrow.parquet as pq

    corpus = tiny_dataset["dir"] / "corpus"
    train = set(pq.read_table(corpus / "train" / "train_00000.parquet")["text"].to_pylist())
    val = set(pq.read_table(corpus / "val" / "val_00000.parquet")["text"].to_pylist())
    assert val and train and not (train & val)
