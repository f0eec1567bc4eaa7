"""TrainLoader and validation_batches invariants on the tiny dataset."""
from __future__ import annotations

import shutil
from itertools import islice

import numpy as np
import pytest

from data.errors import DataError
from data.loader import TrainLoader, validation_batches, validation_tokens
from data.shards import read_manifest

SEQ_LEN = 128


def _batches(shard_dir, seed, count=5, batch_size=4, seq_len=SEQ_LEN):
    return list(islice(TrainLoader(shard_dir, batch_size, seq_len, seed), count))


def test_shapes_dtype_and_shift(tiny_dataset):
    for inputs, targets in _batches(tiny_dataset["shard_dir"], seed=0):
        assert inputs.shape == targets.shape == (4, SEQ_LEN)
        assert inputs.dtype == targets.dtype == np.int64
        assert np.array_equal(inputs[:, 1:], targets[:, :-1])


def test_rows_and_documents_start_with_bos(tiny_dataset):
    bos = tiny_dataset["manifest"]["bos_id"]
    loader = TrainLoader(tiny_dataset["shard_dir"], 8, SEQ_LEN, seed=1)
    for inputs, _ in islice(loader, 10):
        assert (inputs[:, 0] == bos).all()
    # Every piece the packer can place starts with BOS: in the data itself, or written in front of it.
    first_tokens = np.array([loader.shards[s][p] for s, p in zip(loader.piece_shard, loader.piece_start)])
    assert ((first_tokens == bos) | loader.piece_needs_bos).all()
    assert not (loader.piece_needs_bos & (first_tokens == bos)).any()


def test_pieces_cover_every_training_token(tiny_dataset):
    loader = TrainLoader(tiny_dataset["shard_dir"], 2, SEQ_LEN, seed=0)
    assert int(loader.piece_data_len.sum()) == tiny_dataset["manifest"]["tokens"]["train"]
    assert loader.piece_len.max() <= SEQ_LEN + 1


def test_deterministic_for_a_seed_and_seeds_differ(tiny_dataset):
    first = _batches(tiny_dataset["shard_dir"], seed=7)
    again = _batches(tiny_dataset["shard_dir"], seed=7)
    other = _batches(tiny_dataset["shard_dir"], seed=8)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_endless_over_epochs_with_little_waste(tiny_dataset):
    loader = TrainLoader(tiny_dataset["shard_dir"], 16, SEQ_LEN, seed=0)
    train_tokens = tiny_dataset["manifest"]["tokens"]["train"]
    batches = 3 * train_tokens // (16 * (SEQ_LEN + 1)) + 1
    for _ in range(batches):
        next(loader)
    assert loader.epoch >= 2
    assert loader.tokens_dropped / loader.tokens_yielded < 0.05


def test_a_fifth_pass_over_the_split_is_announced_once(tiny_dataset, capsys):
    loader = TrainLoader(tiny_dataset["shard_dir"], 16, SEQ_LEN, seed=0)
    assert loader.train_tokens == tiny_dataset["manifest"]["tokens"]["train"]
    while loader.epoch < 3:
        next(loader)
    assert "warning" not in capsys.readouterr().out  # four passes are fine
    while loader.epoch < 6:
        next(loader)
    out = capsys.readouterr().out
    assert out.count("warning: training starts pass 5 over its training split") == 1
    assert f"({loader.train_tokens:,} tokens in" in out and "dataset=climbmix" in out


def test_never_reads_validation_shards(tiny_dataset, tmp_path):
    shard_dir = tmp_path / "shards"
    shutil.copytree(tiny_dataset["shard_dir"], shard_dir)
    val_files = [e["file"] for e in read_manifest(shard_dir)["shards"] if e["split"] == "val"]
    assert val_files
    for name in val_files:
        (shard_dir / name).unlink()  # if the loader touched a validation shard it would fail now
    loader = TrainLoader(shard_dir, 4, SEQ_LEN, seed=0)
    assert all(path.name.startswith("train_") for path in loader.shard_files)
    next(loader)


def test_no_validation_text_in_training_rows(tiny_dataset):
    # Validation documents are held out by document: a long validation-only n-gram never appears in training rows.
    val = np.asarray(validation_tokens(tiny_dataset["shard_dir"]))
    train = np.concatenate([np.asarray(s) for s in TrainLoader(tiny_dataset["shard_dir"], 1, SEQ_LEN, 0).shards])
    width = 24
    train_grams = {train[i:i + width].tobytes() for i in range(0, train.size - width)}
    val_only = [val[i:i + width].tobytes() for i in range(0, val.size - width, 97) if val[i:i + width].tobytes() not in train_grams]
    assert len(val_only) > 10
    loader = TrainLoader(tiny_dataset["shard_dir"], 16, SEQ_LEN, seed=3)
    seen = set()
    for inputs, _ in islice(loader, 20):
        for row in inputs:
            seen.update(row[i:i + width].astype(train.dtype).tobytes() for i in range(SEQ_LEN - width))
    assert not seen.intersection(val_only)


def test_validation_covers_exactly_eval_tokens(tiny_dataset):
    eval_tokens = 1000
    batches = list(validation_batches(tiny_dataset["shard_dir"], 3, 64, eval_tokens))
    assert sum(int((t >= 0).sum()) for _, t in batches) == eval_tokens
    assert [i.shape[0] for i, _ in batches] == [3, 3, 3, 3, 3, 1]  # ceil(1000/64) = 16 rows, last batch partial
    inputs, targets = batches[-1]
    assert (targets[0, 1000 - 15 * 64:] == -1).all() and (targets[0, :1000 - 15 * 64] >= 0).all()
    stream = np.asarray(validation_tokens(tiny_dataset["shard_dir"]))
    assert np.array_equal(batches[0][0][0], stream[:64]) and np.array_equal(batches[0][1][0], stream[1:65])
    assert np.array_equal(batches[0][0][1], stream[64:128])  # consecutive rows: every token a target once


def test_validation_is_deterministic_and_independent_of_batch_size(tiny_dataset):
    a = np.concatenate([t for _, t in validation_batches(tiny_dataset["shard_dir"], 2, 32, 500)])
    b = np.concatenate([t for _, t in validation_batches(tiny_dataset["shard_dir"], 5, 32, 500)])
    assert np.array_equal(a, b)


def test_validation_wraps_around_when_split_is_short(tiny_dataset):
    stream = np.asarray(validation_tokens(tiny_dataset["shard_dir"]))
    eval_tokens = stream.size + 500
    batches = list(validation_batches(tiny_dataset["shard_dir"], 8, 64, eval_tokens))
    targets = np.concatenate([t.reshape(-1) for _, t in batches])
    scored = targets[targets >= 0]
    assert scored.size == eval_tokens
    assert np.array_equal(scored[:stream.size - 1], stream[1:])
    assert np.array_equal(scored[stream.size - 1:stream.size + 9], np.concatenate([stream[:10]]))


def test_a_wrapping_validation_walk_is_announced_with_its_numbers(tiny_dataset, capsys):
    size = int(np.asarray(validation_tokens(tiny_dataset["shard_dir"])).size)
    list(validation_batches(tiny_dataset["shard_dir"], 8, 64, size - 1))  # exactly fits: size - 1 targets
    assert capsys.readouterr().out == ""
    list(validation_batches(tiny_dataset["shard_dir"], 8, 64, size + 500))
    out = capsys.readouterr().out
    assert f"holds {size:,} tokens, fewer than the {size + 500:,} to score" in out and f"scores {501:,} of them again" in out


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="No shard manifest"):
        TrainLoader(tmp_path, 2, 16, 0)


def test_loader_imports_no_orchestration_packages():
    import subprocess
    import sys

    code = ("import sys, data.loader, data.metric, data.shards; "
            "bad = [m for m in ('prefect', 'hydra', 'omegaconf', 'dvc', 'tokenizers', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_coverage_property(tiny_dataset):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    stream = np.asarray(validation_tokens(tiny_dataset["shard_dir"]))

    @settings(max_examples=40, deadline=None)
    @given(batch_size=st.integers(1, 9), seq_len=st.integers(1, 300), eval_tokens=st.integers(1, 3 * stream.size))
    def check(batch_size, seq_len, eval_tokens):
        batches = list(validation_batches(tiny_dataset["shard_dir"], batch_size, seq_len, eval_tokens))
        targets = np.concatenate([t.reshape(-1) for _, t in batches])
        scored = targets[targets >= 0]
        # Exactly eval_tokens targets, and they are the stream (cycled) from its second token on.
        assert scored.size == eval_tokens
        assert np.array_equal(scored, stream[np.arange(1, eval_tokens + 1) % stream.size])
        assert all(i.shape[0] == batch_size for i, _ in batches[:-1]) and batches[-1][0].shape[0] <= batch_size

    check()
