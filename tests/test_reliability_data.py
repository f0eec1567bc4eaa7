"""Damaged data is caught with one sentence naming the file; a failed ledger write keeps the previous ledger.

The datasets are copies of the session's tiny dataset (never the project's datasets/, which other runs use).
The CLI cases skip DVC (prepare_dataset is replaced by a no-op) and go through the real verification that
data.prepare.prepare_data runs on a paths.data_dir outside the project.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

import pytest

import data.prepare
from data.errors import DataError
from data.shards import verify_shards
from cli.main import main
from research.records.heartbeat import Heartbeat, read_heartbeat
from research.records.ledger import Ledger


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-2])


def other_tokenizer(path: Path) -> None:
    path.write_text(path.read_text().replace('"type":"BPE"', '"type": "BPE"', 1) + " ")


DAMAGE = {
    "flipped byte in a shard": ("shards/train_00001.bin", flip_byte, "does not match its sha256"),
    "truncated shard": ("shards/val_00000.bin", truncate, "bytes instead of"),
    "tokenizer that does not match": ("tokenizer/tokenizer.json", other_tokenizer, "is not the one the shards"),
    "manifest edited": ("shards/manifest.json", lambda p: p.write_text(p.read_text().replace('"tokens"', '"tokens" ', 1).replace("16384", "16385", 1)), "was edited"),
}


@pytest.fixture
def damaged(tiny_dataset, tmp_path, request):
    """A copy of the tiny dataset as datasets/bundled under tmp_path, with one file damaged."""
    name = request.param
    relative, damage, words = DAMAGE[name]
    copy = tmp_path / "datasets" / "bundled"
    shutil.copytree(tiny_dataset["dir"], copy)
    damage(copy / relative)
    return copy, relative, words


@pytest.mark.parametrize("damaged", list(DAMAGE), indirect=True)
def test_verify_names_the_damaged_file_in_one_sentence(damaged):
    copy, relative, words = damaged
    with pytest.raises(DataError) as info:
        verify_shards(copy / "shards", copy / "tokenizer")
    message = str(info.value)
    assert words in message and Path(relative).name in message
    assert "\n" not in message and message.count(". ") == 0 and "autoresearch prepare" in message


@pytest.mark.parametrize("damaged", ["flipped byte in a shard", "truncated shard"], indirect=True)
def test_cli_prints_one_sentence_and_exits_non_zero(damaged, monkeypatch, capsys):
    copy, relative, words = damaged
    monkeypatch.setattr(data.prepare, "prepare_dataset", lambda name, root: None)  # skip DVC, keep the check
    code = main(["train", "preset=cpu", f"paths.data_dir={copy.parent}", f"paths.runs_dir={copy.parent.parent / 'runs'}"])
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0] and Path(relative).name in lines[0]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["flipped byte in a shard"], indirect=True)
def test_run_command_stops_on_a_corrupt_shard_with_one_sentence(damaged, monkeypatch, capsys):
    copy, relative, words = damaged
    checks = []  # one entry per attempt of the prepare task, which starts with the DVC stages (skipped here)
    monkeypatch.setattr(data.prepare, "prepare_dataset", lambda name, root: checks.append(name))
    code = main(["run", "preset=cpu", "proposer=local", "tag=corrupt", f"paths.data_dir={copy.parent}",
                 f"paths.runs_dir={copy.parent.parent / 'runs'}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in err
    # A corrupt shard is not retried (the prepare task retries downloads only): one attempt, not three.
    assert len(checks) == 1


# ------------------------------------------------------------------------------------------- disk full
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_failed_ledger_write_leaves_the_previous_ledger(tmp_path, monkeypatch, where):
    ledger = Ledger(tmp_path / "results.tsv")
    ledger.record({"exp": 0, "status": "baseline", "val_bpb": 1.5, "description": "baseline"})
    before = (tmp_path / "results.tsv").read_bytes()
    import common.atomic

    if where == "write":
        real_fdopen = os.fdopen

        class FullFile:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def write(self, payload):
                self.handle.write(payload[: len(payload) // 2])  # half of it reached the disk
                _disk_full()

        monkeypatch.setattr(common.atomic.os, "fdopen", lambda fd, mode: FullFile(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(common.atomic.os, where, _disk_full)
    with pytest.raises(OSError) as info:
        ledger.record({"exp": 1, "status": "discard", "val_bpb": 1.6, "description": "x"})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert (tmp_path / "results.tsv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.tsv"]  # no temporary file left behind
    assert [row["exp"] for row in Ledger(tmp_path / "results.tsv").rows()] == [0]
    assert ledger.record({"exp": 1, "status": "discard", "val_bpb": 1.6, "description": "x"})  # space again


def test_a_failed_heartbeat_write_leaves_the_previous_beat(tmp_path, monkeypatch):
    beat = Heartbeat(tmp_path / "heartbeat.json", "t")
    beat.beat("training", exp=3)
    import common.atomic

    monkeypatch.setattr(common.atomic.os, "replace", _disk_full)
    with pytest.raises(OSError):
        beat.beat("evaluating", exp=3)
    monkeypatch.undo()
    assert read_heartbeat(tmp_path)["phase"] == "training"
