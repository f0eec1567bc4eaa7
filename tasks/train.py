"""Train task: start `python -m training.entry EXP_DIR` in isolation and return its metrics.

Idempotent: a finished training (metrics.json says ok and the checkpoint exists, or was released after its
evaluation) or a recorded failure is returned as it is, never redone; only a training cut short (no metrics.json)
runs again. Before one starts, the disk must hold what it will write (training/disk.py); a child that ran out of
disk anyway stops the run (common.atomic.DiskFull) instead of recording the block as a crash.
"""
from __future__ import annotations

from prefect import task

from experiment.progress_lines import relay, training_progress
from training.disk import ensure_room
from training.launch import finished_metrics, finished_training, run_isolated
from training.run_config import ExperimentDir, load_run_config


def run_training(exp_dir: str, deadline_seconds: float | None, on_line=None,
                 silence_seconds: float | None = None) -> dict:
    files = ExperimentDir(exp_dir)
    done = finished_training(files.root)
    if done is not None:
        return {**done, "reused": True}
    files.metrics.unlink(missing_ok=True)
    ensure_room(files.root, load_run_config(files.root))
    result = run_isolated("training.entry", files.root, files.train_log, deadline_seconds, on_line,
                          silence_seconds=silence_seconds)
    result.raise_if_disk_full(files.root)
    metrics = finished_metrics(files.metrics, files.checkpoint)
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
    The limits are training.launch.run_isolated's."""
    from prefect.logging import get_run_logger

    from tasks.gpu_slots import device_slot

    logger = get_run_logger()
    # Each line to the run's Prefect log, and its progress to whoever listens (experiment.events: the terminal view)
    on_line = relay(training_progress, exp, label, logger.info)
    files = ExperimentDir(exp_dir)
    if finished_training(files.root) is not None:
        return run_training(exp_dir, deadline_seconds, on_line)  # already done: no device needed to read it
    with device_slot(slots, "train", exp_dir, logger.info):
        return run_training(exp_dir, deadline_seconds, on_line, silence_seconds)
