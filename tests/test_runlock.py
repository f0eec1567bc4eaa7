"""One process per run tag: a live holder refuses a second run; a dead holder's lock is taken over."""
import json
import os
import socket
import subprocess
import sys
import textwrap

from pathlib import Path

import pytest

from research.errors import ResearchStopped
from research.records.runlock import RunLock, RunLocked, read_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from research.records.runlock import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()   # hold until the test says so
""")


ROOT = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": ROOT}


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def holder(tmp_path):
    run_dir = tmp_path / "my-tag"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=ENV)
    assert process.stdout.readline().strip() == "locked"
    yield run_dir, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_second_run_is_refused_while_the_first_lives(holder):
    run_dir, process = holder
    with pytest.raises(RunLocked) as err:
        with RunLock(run_dir):
            pass
    message = str(err.value)
    assert message == (f"Run 'my-tag' is already running (pid {process.pid} on host {socket.gethostname()}); "
                       "wait for it or choose another tag=.")
    assert isinstance(err.value, ResearchStopped)  # the CLI prints it as one sentence
    assert read_lock(run_dir)["pid"] == process.pid  # the refusal did not disturb the holder's file


def test_lock_is_free_again_after_the_holder_exits_or_is_killed(holder):
    run_dir, process = holder
    process.kill()  # no cleanup: the file stays, the kernel drops the flock
    process.wait()
    assert (run_dir / "run.lock").exists()
    with RunLock(run_dir) as lock:
        assert lock.held and read_lock(run_dir)["pid"] == os.getpid()
    assert not (run_dir / "run.lock").exists()


def test_stale_lock_file_from_a_dead_pid_is_taken_over(tmp_path, caplog):
    run_dir = tmp_path / "tag"
    run_dir.mkdir()
    pid = dead_pid()
    (run_dir / "run.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": 0}))
    with RunLock(run_dir):
        assert read_lock(run_dir)["pid"] == os.getpid()
        with pytest.raises(RunLocked):  # flock conflicts between two opens in one process too
            RunLock(run_dir).acquire()
    assert "taking over" in caplog.text and str(pid) in caplog.text
    assert sorted(p.name for p in run_dir.iterdir()) == []  # released, no temp files left


def test_lock_from_another_host_is_not_taken_over(tmp_path):
    run_dir = tmp_path / "tag"
    run_dir.mkdir()
    (run_dir / "run.lock").write_text(json.dumps({"pid": 123, "host": "other-host"}))
    with pytest.raises(RunLocked, match="pid 123 on host other-host.*delete"):
        RunLock(run_dir).acquire()
    assert json.loads((run_dir / "run.lock").read_text())["host"] == "other-host"


def test_release_then_reacquire(tmp_path):
    run_dir = tmp_path / "tag"
    lock = RunLock(run_dir)
    lock.acquire()
    assert read_lock(run_dir)["pid"] == os.getpid()
    lock.release()
    assert not (run_dir / "run.lock").exists()
    lock.release()  # harmless
    assert list(run_dir.iterdir()) == []
    # Released for real: a second lock (a conflict even inside one process) is granted and records us again.
    with RunLock(run_dir):
        assert read_lock(run_dir)["pid"] == os.getpid()
    assert list(run_dir.iterdir()) == []


# A winner holds the lock until every other racer has tried and written its marker (or 20 s pass): however late
# a racer starts under load, it meets a held lock, so two winners mean the lock failed, not a slow machine.
RACER = textwrap.dedent("""
    import pathlib, sys, time
    from research.records.runlock import RunLock, RunLocked
    start, markers, racers = float(sys.argv[2]), pathlib.Path(sys.argv[3]), int(sys.argv[4])
    while time.time() < start:
        time.sleep(0.001)
    try:
        with RunLock(sys.argv[1]):
            (markers / f"won-{time.time_ns()}").touch()
            end = time.time() + 20
            while len(list(markers.iterdir())) < racers and time.time() < end:
                time.sleep(0.01)
            print("won", flush=True)
    except RunLocked:
        (markers / f"lost-{time.time_ns()}").touch()
        print("lost", flush=True)
""")


def test_racing_takeovers_of_a_stale_lock_have_one_winner(tmp_path):
    import time

    run_dir = tmp_path / "tag"
    run_dir.mkdir()
    (run_dir / "run.lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    markers = tmp_path / "markers"
    markers.mkdir()
    start = time.time() + 1.0
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(run_dir), str(start), str(markers), "4"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV) for _ in range(4)]
    outcomes = sorted(racer.communicate(timeout=30)[0].strip() for racer in racers)
    assert outcomes == ["lost", "lost", "lost", "won"]
    assert list(run_dir.iterdir()) == []
