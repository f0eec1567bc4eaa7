"""A full disk stops the run with one sentence that names the folder, and loses nothing: injected ENOSPC in the
atomic writer (ledger, metrics), the launcher's log and the child processes, the free-space check before a
training at its threshold, and the CLI's sentence for errors from git, SQLite and Prefect's server."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import common.atomic as atomic
from common.atomic import DISK_FULL_EXIT, DiskFull, atomic_write_text, is_disk_full
from cli.disk_full import NEARLY_FULL_BYTES, disk_full_sentence
from training.launch import ProcessResult

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def one_sentence(text: str) -> bool:
    return text.count(". ") == 0 and text.endswith(".") and "\n" not in text and "Traceback" not in text


# ------------------------------------------------------------------------------------------ the atomic writer
@pytest.mark.parametrize("where", ["fsync", "mkstemp"])
def test_a_full_disk_keeps_the_old_file_and_says_which_folder(tmp_path, monkeypatch, where):
    target = tmp_path / "records" / "results.tsv"
    atomic_write_text(target, "exp\tval_bpb\n0\t1.5\n")
    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", enospc)
    else:
        monkeypatch.setattr(atomic.tempfile, "mkstemp", enospc)
    with pytest.raises(DiskFull) as caught:
        atomic_write_text(target, "exp\tval_bpb\n0\t1.5\n1\t1.4\n")
    assert str(target.parent) in str(caught.value) and one_sentence(str(caught.value))
    assert caught.value.errno == errno.ENOSPC and is_disk_full(caught.value)
    assert target.read_text() == "exp\tval_bpb\n0\t1.5\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.tsv"]  # no temporary file left behind


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def eio(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", eio)
    with pytest.raises(OSError) as caught:
        atomic_write_text(tmp_path / "x.json", "{}")
    assert not isinstance(caught.value, DiskFull) and not is_disk_full(caught.value)


def test_the_ledger_loses_no_row_when_the_disk_fills(tmp_path, monkeypatch):
    from research.records.ledger import Ledger

    ledger = Ledger(tmp_path / "results.tsv")
    ledger.record({"exp": 0, "status": "baseline", "val_bpb": 1.5, "seed": 42})
    before = (tmp_path / "results.tsv").read_text()
    monkeypatch.setattr(atomic.os, "fsync", enospc)
    with pytest.raises(DiskFull):
        ledger.record({"exp": 1, "status": "baseline", "val_bpb": 1.4, "seed": 43})
    monkeypatch.undo()
    assert (tmp_path / "results.tsv").read_text() == before
    ledger.record({"exp": 1, "status": "baseline", "val_bpb": 1.4, "seed": 43})  # room again: the same call works
    assert [row["exp"] for row in Ledger(tmp_path / "results.tsv").rows()] == [0, 1]


# ---------------------------------------------------------------------------- the launcher and its children
def test_a_log_that_cannot_be_written_stops_the_run_naming_its_folder(tmp_path, monkeypatch):
    from training.launch import run_isolated

    class FullLog:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = write

    monkeypatch.setattr("builtins.open", FullLog)
    with pytest.raises(DiskFull) as caught:
        run_isolated("tests.chatty_child", tmp_path, tmp_path / "train.log", 30.0)
    assert str(tmp_path) in str(caught.value)


def test_a_child_that_ran_out_of_disk_stops_the_run_instead_of_recording_a_crash(tmp_path, monkeypatch):
    import tasks.train as train_module
    from tasks.train import run_training
    from training.run_config import ExperimentDir

    files = ExperimentDir(tmp_path)
    files.config.write_text(json.dumps({"hparams": {}, "train": {}, "budget": {}, "data": {}}))
    said = f"The disk holding {tmp_path} is full: free some space there and run the same command again."
    monkeypatch.setattr(train_module, "ensure_room", lambda *args: None)
    monkeypatch.setattr(train_module, "run_isolated",
                        lambda *a, **k: ProcessResult(DISK_FULL_EXIT, None, 1.0, f"step 1\ndisk full: {said}"))
    with pytest.raises(DiskFull) as caught:
        run_training(str(tmp_path), None)
    assert str(caught.value) == said
    assert not files.metrics.exists()  # nothing recorded: the same command trains it again


def test_an_exit_code_other_than_28_is_an_ordinary_failure(tmp_path):
    ProcessResult(1, None, 1.0, "disk full: no").raise_if_disk_full(tmp_path)  # no exception


def test_the_training_process_exits_28_when_its_checkpoint_does_not_fit(tmp_path, monkeypatch, capsys):
    """The child's own handling, in process: the checkpoint hits ENOSPC while small files still fit. No
    metrics.json (which would record the block as a crash); the sentence the orchestrator reads back, naming the
    folder of the file that did not fit."""
    import training.entry as entry

    monkeypatch.setattr(entry, "die_with_parent", lambda: None)

    def run(exp_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(exp_dir) / "checkpoint.npz"))

    monkeypatch.setattr(entry, "run", run)
    assert entry.main([str(tmp_path)]) == DISK_FULL_EXIT
    assert not (tmp_path / "metrics.json").exists()
    assert f"disk full: The disk holding {tmp_path} is full" in capsys.readouterr().err


def test_the_training_process_exits_28_when_only_its_metrics_do_not_fit(tmp_path, monkeypatch, capsys):
    import training.entry as entry

    monkeypatch.setattr(entry, "die_with_parent", lambda: None)
    monkeypatch.setattr(entry, "run", lambda exp_dir: {"status": "ok"})
    monkeypatch.setattr(atomic.os, "fsync", enospc)
    assert entry.main([str(tmp_path)]) == DISK_FULL_EXIT
    assert f"disk full: The disk holding {tmp_path} is full" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["scoring", "writing eval.json"])
def test_the_evaluation_process_exits_28_without_a_failed_score(tmp_path, monkeypatch, where):
    import training.evaluate as evaluate

    monkeypatch.setattr(evaluate, "die_with_parent", lambda: None)
    if where == "scoring":  # e.g. a compile cache under a full /tmp, while eval.json would still fit
        monkeypatch.setattr(evaluate, "evaluate", enospc)
    else:
        monkeypatch.setattr(evaluate, "evaluate", lambda exp_dir: {"status": "ok", "val_bpb": 1.0})
        monkeypatch.setattr(atomic.os, "fsync", enospc)
    assert evaluate.main([str(tmp_path)]) == DISK_FULL_EXIT
    assert not (tmp_path / "eval.json").exists()


# -------------------------------------------------------------------------- free space before a training
def test_free_space_is_checked_against_the_next_trainings_checkpoint_at_its_threshold(tmp_path, monkeypatch):
    import shutil

    import training.disk as disk

    monkeypatch.setattr(disk, "parameter_count", lambda run_cfg: 50_300_000)  # the datacenter default's size
    need = disk.checkpoint_bytes(50_300_000) + disk.MARGIN_BYTES
    assert 201e6 < disk.checkpoint_bytes(50_300_000) < 202e6

    def free(n):
        monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, n))

    free(need)
    assert disk.ensure_room(tmp_path, {}) == need
    free(need - 1)
    with pytest.raises(DiskFull) as caught:
        disk.ensure_room(tmp_path, {})
    text = str(caught.value)
    assert str(tmp_path) in text and "218 MB" in text and one_sentence(text)


def test_an_unknown_block_size_checks_nothing(tmp_path, monkeypatch):
    import training.disk as disk

    assert disk.parameter_count({"hparams": {"model": {}}, "train": {}, "data": {}}) is None
    assert disk.ensure_room(tmp_path, {"hparams": {}}) is None


def test_the_parameter_count_is_the_models(tmp_path, tiny_dataset):
    from tests.training_helpers import make_experiment
    from training.disk import parameter_count
    from training.run_config import load_run_config

    cfg = load_run_config(make_experiment(tmp_path, tiny_dataset))
    import torch

    from models.gpt import GPT
    from models.hparams import GPTConfig
    from training.run_config import vocab_size

    model = GPT(GPTConfig.from_hparams(cfg["hparams"]["model"], vocab_size(cfg), int(cfg["train"]["seq_len"])))
    assert parameter_count(cfg) == sum(p.numel() for p in model.parameters()) > 0
    del torch


# ----------------------------------------------------------------------------------------- the CLI's sentence
def test_the_cli_names_the_folder_of_a_git_or_sqlite_disk_full(tmp_path):
    from research.records.runrepo import RunRepoError

    runs, prefect_home = tmp_path / "runs", tmp_path / "prefect"
    git = RunRepoError(f"git commit -q failed in {runs}/t/repo: error: No space left on device")
    sentence = disk_full_sentence(git, [runs, prefect_home])
    assert sentence.startswith("The disk holding ") and one_sentence(sentence)
    sqlite = RuntimeError("sqlite3.OperationalError: database or disk is full")
    assert disk_full_sentence(sqlite, [prefect_home]) == str(DiskFull(prefect_home))


def test_a_server_error_is_a_full_disk_only_where_a_folder_is_nearly_full(tmp_path, monkeypatch):
    import cli.disk_full as module

    server = RuntimeError("Server error '500 Internal Server Error' for url 'http://127.0.0.1:8/api/task_runs/'")
    prefect_home, runs = tmp_path / "prefect", tmp_path / "runs"
    space = {prefect_home: NEARLY_FULL_BYTES, runs: 10**9}
    monkeypatch.setattr(module, "_free", lambda folder: space[folder])
    assert disk_full_sentence(server, [runs, prefect_home]) is None  # 1 MiB free: not full, a real server error
    space[prefect_home] = NEARLY_FULL_BYTES - 1
    assert disk_full_sentence(server, [runs, prefect_home]) == str(DiskFull(prefect_home))


def test_the_cli_prints_one_sentence_and_exits_2_on_a_full_disk(tmp_path, monkeypatch, capsys):
    from cli import main as cli

    def full(overrides):
        raise DiskFull(tmp_path / "runs" / "t")

    monkeypatch.setattr("cli.commands.status_command", lambda tag, overrides: full(overrides))
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {DiskFull(tmp_path / 'runs' / 't')}"


# ------------------------------------------------------------------------------- a real, small filesystem
def fill(path: Path) -> None:
    """Write zeros until the filesystem says ENOSPC (unbuffered, so the error comes here and not at close)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 kB tmpfs: needs root (mount); skipped elsewhere, the injected tests above stand in."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_on_a_full_filesystem_the_ledger_keeps_its_rows_and_the_sentence_names_it(small_disk):
    from research.records.ledger import Ledger

    ledger = Ledger(small_disk / "run" / "results.tsv")
    ledger.record({"exp": 0, "status": "baseline", "val_bpb": 1.5, "seed": 42})
    before = ledger.path.read_text()
    fill(small_disk / "filler")
    with pytest.raises(DiskFull) as caught:
        ledger.record({"exp": 1, "status": "baseline", "val_bpb": 1.4, "seed": 43, "description": "x" * 8192})
    assert str(small_disk / "run") in str(caught.value)
    assert (small_disk / "run" / "results.tsv").read_text() == before


@pytest.mark.slow
def test_a_real_training_on_a_full_filesystem_exits_28_and_records_nothing(small_disk, tmp_path, tiny_dataset):
    """The tiny model's checkpoint (~0.8 MB) does not fit in 256 kB: the training process says so and exits 28."""
    from tests.training_helpers import make_experiment

    exp_dir = make_experiment(small_disk, tiny_dataset, ["budget.steps=1"])
    done = subprocess.run([sys.executable, "-m", "training.entry", str(exp_dir)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == DISK_FULL_EXIT, done.stdout + done.stderr
    assert f"disk full: The disk holding {exp_dir} is full" in done.stderr
    assert not (exp_dir / "metrics.json").exists() and not (exp_dir / "checkpoint.npz").exists()


@pytest.mark.slow
def test_a_research_run_on_a_small_disk_stops_before_training_and_records_no_crash(small_disk):
    """runs_dir on a 256 kB filesystem: the run folder is made, then the first training is refused with one
    sentence (its checkpoint and margin do not fit) before any process starts, and no row is recorded. (The
    resume with room is the ordinary resume: tests/test_disk_retention.py and tests/test_flow_research.py.)"""
    from flows.research import research_flow
    from tests.test_flow_research import TINY_RUN

    overrides = TINY_RUN + [f"paths.runs_dir={small_disk}", "tag=full", "proposer=local", "research.max_experiments=1"]
    with pytest.raises(DiskFull) as caught:
        research_flow(overrides=overrides)
    assert "Not enough free space for the next training in" in str(caught.value) and one_sentence(str(caught.value))
    run_dir = small_disk / "full"
    assert not (run_dir / "results.tsv").exists() or (run_dir / "results.tsv").read_text().count("\n") <= 1
    assert not (run_dir / "exp" / "0" / "train.log").exists()  # no training was started


def test_a_suite_stops_at_a_dataset_whose_run_found_the_disk_full(tmp_path):
    """The next dataset would not fit either: the suite raises the run's sentence instead of going on."""
    from prefect.states import Failed

    from flows.suite import stop_if_disk_full

    with pytest.raises(DiskFull) as caught:
        stop_if_disk_full(Failed(data=DiskFull(tmp_path)))
    assert str(caught.value) == str(DiskFull(tmp_path))
    stop_if_disk_full(Failed(data=RuntimeError("a crashed baseline")))  # any other failure: the suite goes on
