"""The training process end to end on the tiny dataset: it learns, respects its budget, records failures."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training_helpers import MLX_MISSING, alive, make_experiment
from training.run_config import CHECKPOINT_FILE, EVAL_FILE, METRICS_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, exp_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, str(exp_dir)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def untrained_val_bpb(exp_dir: Path, tmp_path: Path) -> float:
    """val_bpb of the freshly initialised model: the same config, its checkpoint written before any step."""
    import torch

    from hardware import get_adapter
    from training.checkpoint import save_checkpoint
    from training.run_config import load_run_config
    from training.torch_port import build_model, evaluate, torch_state_arrays

    cfg = load_run_config(exp_dir)
    init_dir = tmp_path / "init"
    init_dir.mkdir()
    torch.manual_seed(0)
    model = build_model(cfg, get_adapter("cpu"))
    save_checkpoint(init_dir, torch_state_arrays(model), dataclasses.asdict(model.config))
    return evaluate(cfg, init_dir, get_adapter("cpu"))["val_bpb"]


def test_tiny_training_learns_and_writes_its_records(tmp_path, tiny_dataset):
    exp_dir = make_experiment(tmp_path, tiny_dataset, ["budget.steps=40"])
    trained = run_module("training.entry", exp_dir)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = read(exp_dir / METRICS_FILE)
    assert metrics["status"] == "ok" and metrics["steps"] == 40
    assert metrics["tokens"] == 40 * 2048
    assert metrics["tokens_per_second"] > 0 and metrics["mfu_percent"] is None  # CPU peak unknown: no guessing
    assert (exp_dir / CHECKPOINT_FILE).is_file()

    evaluated = run_module("training.evaluate", exp_dir)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    result = read(exp_dir / EVAL_FILE)
    assert result["eval_tokens"] == 4096
    initial = untrained_val_bpb(exp_dir, tmp_path)
    # Learning, not noise: 40 steps take the tiny model well below where it started.
    assert result["val_bpb"] < 0.8 * initial, (result["val_bpb"], initial)


def test_time_budget_is_respected(tmp_path, tiny_dataset):
    exp_dir = make_experiment(tmp_path, tiny_dataset, ["budget.kind=time", "budget.seconds=3"])
    assert run_module("training.entry", exp_dir).returncode == 0
    metrics = read(exp_dir / METRICS_FILE)
    assert metrics["steps"] >= 1  # on a loaded 2-core CI machine one step can take most of the 3 s
    # No step starts unless the recent step time says it fits; allow one step's jitter.
    step_seconds = metrics["training_seconds"] / metrics["steps"]
    assert metrics["training_seconds"] <= 3.0 + step_seconds
    assert metrics["training_seconds"] >= 3.0 - 2 * step_seconds


@pytest.mark.parametrize("kind, expected_kind, words", [
    ("nan", "nan", "became nan at step 3"),
    ("explode", "explosion", "exploded"),
    ("oom", "oom", "out of memory"),
])
def test_training_faults_end_with_their_reason(tmp_path, tiny_dataset, kind, expected_kind, words):
    exp_dir = make_experiment(tmp_path, tiny_dataset, fault={"kind": kind, "step": 3})
    proc = run_module("training.entry", exp_dir)
    assert proc.returncode == 1
    metrics = read(exp_dir / METRICS_FILE)
    assert metrics["status"] == "failed" and metrics["kind"] == expected_kind
    assert words in metrics["reason"]
    assert not (exp_dir / CHECKPOINT_FILE).exists()


def test_impossible_batch_split_is_a_config_failure(tmp_path, tiny_dataset):
    exp_dir = make_experiment(tmp_path, tiny_dataset, ["hparams.batch.total_batch_tokens=3000"])
    assert run_module("training.entry", exp_dir).returncode == 1
    metrics = read(exp_dir / METRICS_FILE)
    assert metrics["kind"] == "config" and "not a multiple of" in metrics["reason"]


def test_evaluation_without_checkpoint_fails_clearly(tmp_path, tiny_dataset):
    exp_dir = make_experiment(tmp_path, tiny_dataset)
    assert run_module("training.evaluate", exp_dir).returncode == 1
    assert "checkpoint.npz is missing" in read(exp_dir / EVAL_FILE)["reason"]


def test_mlx_training_checkpoint_is_scored_alike_by_both_backends(tmp_path, tiny_dataset):
    pytest.importorskip("mlx.core", reason=MLX_MISSING)
    from hardware import get_adapter
    from training import mlx_port, torch_port
    from training.run_config import load_run_config

    exp_dir = make_experiment(tmp_path, tiny_dataset, ["budget.steps=5"])
    cfg = load_run_config(exp_dir)
    metrics = mlx_port.train(cfg, exp_dir, get_adapter("mlx"))
    assert metrics["status"] == "ok" and metrics["steps"] == 5 and metrics["backend"] == "mlx"
    by_mlx = mlx_port.evaluate(cfg, exp_dir, get_adapter("mlx"))["val_bpb"]
    by_torch = torch_port.evaluate(cfg, exp_dir, get_adapter("cpu"))["val_bpb"]
    assert by_mlx == pytest.approx(by_torch, rel=1e-3)


def test_training_dies_with_a_killed_orchestrator(tmp_path, tiny_dataset):
    import os
    import signal
    import time

    exp_dir = make_experiment(tmp_path, tiny_dataset, ["budget.steps=100000"])
    log = tmp_path / "child.log"
    parent_code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-m', 'training.entry', {str(exp_dir)!r}], start_new_session=True,"
        f" stdout=open({str(log)!r}, 'w'), stderr=subprocess.STDOUT)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    # The child must be training (its first step printed, so its lifeline is set) when the parent dies: a child
    # that crashed at start-up would otherwise pass for one killed with its parent.
    deadline = time.time() + 120
    while time.time() < deadline and "step " not in log.read_text(errors="replace"):
        assert alive(child_pid), f"the trainer died before its first step: {log.read_text()}"
        time.sleep(0.2)
    assert alive(child_pid), f"the trainer did not print a step in 120 s: {log.read_text()}"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    # A killed child stays a zombie until reaped (it was re-parented to init, which reaps it): not living.
    while time.time() < deadline and alive(child_pid):
        time.sleep(0.2)
    if alive(child_pid):
        os.kill(child_pid, signal.SIGKILL)
        raise AssertionError("the training process outlived its killed orchestrator")
    assert not (exp_dir / METRICS_FILE).exists()  # it never got to record a false result


def test_a_step_that_cannot_fit_the_time_budget_fails_at_once(tmp_path, tiny_dataset):
    # 4,096 micro-batches of 8 x 128 tokens per optimizer step against a 2 s budget: without the check the one
    # step runs for minutes (past the orchestrator's deadline on the cpu preset) and ends as an unexplained kill.
    exp_dir = make_experiment(tmp_path, tiny_dataset, ["budget.kind=time", "budget.seconds=2",
                                                      "hparams.batch.total_batch_tokens=4194304"])
    assert run_module("training.entry", exp_dir).returncode == 1
    metrics = read(exp_dir / METRICS_FILE)
    assert metrics["kind"] == "budget" and "4096 micro-batches" in metrics["reason"]
    assert not (exp_dir / CHECKPOINT_FILE).exists()
