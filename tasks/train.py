"""Train task: start `python -m training.entry EXP_DIR` in isolation and return its metrics.

Idempotent: a finished training (metrics.json says ok and the checkpoint exists) or a recorded failure is
returned as it is, never redone; only a training cut short (no metrics.json) runs again.
"""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task

from tasks.process import run_isolated
from training.run_config import CHECKPOINT_FILE, METRICS_FILE, TRAIN_LOG


def finished_metrics(directory: Path, result_file: str, needs: str | None) -> dict | None:
    """The recorded outcome of an earlier attempt, if that attempt ended (success or a real failure)."""
    path = directory / result_file
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if metrics.get("status") == "ok" and (needs is None or (directory / needs).is_file()):
        return metrics
    if metrics.get("status") == "failed" and metrics.get("kind") != "interrupted":
        return metrics
    return None


def run_training(exp_dir: str, deadline_seconds: float | None, on_line=None,
                 silence_seconds: float | None = None) -> dict:
    directory = Path(exp_dir)
    done = finished_metrics(directory, METRICS_FILE, CHECKPOINT_FILE)
    if done is not None:
        return {**done, "reused": True}
    (directory / METRICS_FILE).unlink(missing_ok=True)
    result = run_isolated("training.entry", directory, directory / TRAIN_LOG, deadline_seconds, on_line,
                          silence_seconds=silence_seconds)
    metrics = finished_metrics(directory, METRICS_FILE, CHECKPOINT_FILE)
    if metrics is None or (result.returncode != 0 and metrics.get("status") == "ok"):
        metrics = {"status": "failed", "kind": "process", "reason": f"training {result.describe_failure()}"}
    metrics["log_tail"] = result.log_tail
    metrics["process_seconds"] = result.seconds  # wall time of the whole process, for overhead accounting
    metrics["reused"] = False
    return metrics


@task(name="train", task_run_name="exp-{exp} train {label}", persist_result=True,
      cache_key_fn=lambda context, parameters: parameters["cache_key"])
def train_task(exp: int, exp_dir: str, deadline_seconds: float | None, cache_key: str, label: str = "",
               slots: dict | None = None, silence_seconds: float | None = None) -> dict:
    """`slots` (tasks.gpu_slots.resolve_slots) holds one device for the training: one training per device.
    The limits are tasks.process.run_isolated's."""
    from prefect.logging import get_run_logger

    from tasks.gpu_slots import device_slot

    logger = get_run_logger()
    on_line = lambda line: logger.info(line) if line else None  # noqa: E731
    if finished_metrics(Path(exp_dir), METRICS_FILE, CHECKPOINT_FILE) is not None:
        return run_training(exp_dir, deadline_seconds, on_line)  # already done: no device needed to read it
    with device_slot(slots, "train", exp_dir, logger.info):
        return run_training(exp_dir, deadline_seconds, on_line, silence_seconds)
