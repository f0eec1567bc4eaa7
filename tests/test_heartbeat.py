"""heartbeat.json and the `autoresearch status` text: alive, stale, process gone, other host, finished."""
import json
import os
import socket
import subprocess
import sys

import pytest

from research.records.heartbeat import Heartbeat, describe_status, read_heartbeat


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_beat_writes_atomically_and_reads_back(tmp_path):
    run = tmp_path / "my-run"
    beat = Heartbeat(run).beat("training", exp=7, best=0.98123, counts={"keep": 2, "discard": 4}, message="lr sweep")
    on_disk = json.loads((run / "heartbeat.json").read_text())
    assert on_disk == beat == read_heartbeat(run) == read_heartbeat(run / "heartbeat.json")
    assert on_disk["phase"] == "training" and on_disk["experiment"] == 7 and on_disk["tag"] == "my-run"
    assert on_disk["pid"] == os.getpid() and on_disk["host"] == socket.gethostname()
    assert on_disk["time_iso"].startswith("20") and isinstance(on_disk["time"], float)
    assert sorted(p.name for p in run.iterdir()) == ["heartbeat.json"]


def test_unknown_phase_and_missing_or_corrupt_file(tmp_path):
    with pytest.raises(ValueError, match="phase"):
        Heartbeat(tmp_path).beat("napping")
    assert read_heartbeat(tmp_path) is None
    (tmp_path / "heartbeat.json").write_text("{not json")
    assert read_heartbeat(tmp_path) is None


def test_status_of_a_live_run(tmp_path):
    beat = Heartbeat(tmp_path / "run").beat("evaluating", exp=3, best=0.97, counts={"keep": 1, "crash": 1})
    text = describe_status(beat, now=beat["time"] + 30)
    assert "evaluating experiment 3" in text and "0.970000" in text and "1 keep, 1 crash" in text
    assert "30 s ago" in text and "Stale" not in text and "gone" not in text


def test_status_says_stale(tmp_path):
    beat = Heartbeat(tmp_path / "run").beat("training", exp=3)
    text = describe_status(beat, now=beat["time"] + 3600, stale_after_s=600)
    assert "Stale" in text and "60 min" in text


def test_status_says_the_process_is_gone(tmp_path):
    beat = Heartbeat(tmp_path / "run").beat("training", exp=3)
    beat["pid"] = dead_pid()
    text = describe_status(beat, now=beat["time"] + 5)
    assert f"pid {beat['pid']}) is gone" in text and "resume" in text


def test_status_on_another_host_does_not_probe(tmp_path):
    beat = Heartbeat(tmp_path / "run").beat("training", exp=3)
    beat["host"], beat["pid"] = "gpu-box-7", dead_pid()
    text = describe_status(beat, now=beat["time"] + 5)
    assert "on host gpu-box-7" in text and "gone" not in text


def test_finished_run_is_neither_stale_nor_gone(tmp_path):
    beat = Heartbeat(tmp_path / "run").beat("done", exp=40, best=0.95)
    beat["pid"] = dead_pid()
    text = describe_status(beat, now=beat["time"] + 86400 * 3)
    assert "done" in text and "Stale" not in text and "gone" not in text and "3.0 days" in text
