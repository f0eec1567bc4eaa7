"""An experiment's two isolated processes in order: training, then, if it succeeded, evaluation.

One function for both places that run them: the research flow's own process (research.executor=local) and
the work pool's `train-evaluate` flow (flows/pool.py), so the two cannot drift in cache keys or limits.
"""
from __future__ import annotations

from typing import Callable

from tasks.evaluate import evaluate_task
from tasks.train import train_task


def train_then_evaluate(exp: int, exp_dir: str, train_deadline: float | None, train_silence: float | None,
                        eval_silence: float, cache_key: str, label: str, slots: dict | None,
                        before_evaluation: Callable[[], None] | None = None) -> tuple[dict, dict | None]:
    """(metrics, evaluation); evaluation is None when the training failed. `cache_key` is the experiment's
    prefix: each task adds its own suffix. `before_evaluation` runs between the two (the heartbeat's beat)."""
    metrics = train_task(exp, exp_dir, train_deadline, cache_key=f"{cache_key}-train", label=label, slots=slots,
                         silence_seconds=train_silence)
    if metrics.get("status") != "ok":
        return metrics, None
    if before_evaluation is not None:
        before_evaluation()
    evaluation = evaluate_task(exp, exp_dir, eval_silence, cache_key=f"{cache_key}-eval", label=label, slots=slots)
    return metrics, evaluation
