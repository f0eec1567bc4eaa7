"""The budgeted optimisation loop every backend shares: schedule, budget, fault injection, loss checks,
progress. A backend supplies only `step(lr_scale) -> loss`, one optimizer step over the full batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from optim.schedule import lr_multiplier
from training.budget import Budget
from training.faults import Fault
from training.outcome import check_loss, explosion_limit
from training.progress import Progress


@dataclass
class LoopResult:
    steps: int
    training_seconds: float
    final_loss: float


def budgeted_training(step: Callable[[float], float], budget: Budget, schedule: dict, fault: Fault | None,
                      vocab_size: int, tokens_per_step: int, log_every_seconds: float) -> LoopResult:
    """Run optimizer steps until the budget is used. `step` must return the step's mean loss as a float,
    which forces the device to finish the step, so the clock measures real work."""
    limit = explosion_limit(vocab_size)
    progress = Progress(budget.describe(), log_every_seconds)
    steps, elapsed, loss = 0, 0.0, float("nan")
    try:
        while budget.has_room(steps, elapsed):
            started = time.time()
            lr_scale = lr_multiplier(budget.progress(steps, elapsed), schedule["warmup_frac"],
                                     schedule["warmdown_frac"], schedule["final_lr_frac"])
            loss = step(lr_scale)
            steps += 1
            if fault:
                fault.trigger_process_fault(steps)
                loss *= fault.loss_factor(steps)
            check_loss(loss, steps, limit)
            step_seconds = time.time() - started
            budget.record_step(step_seconds)
            elapsed += step_seconds
            progress.update(steps, budget.progress(steps, elapsed), loss, steps * tokens_per_step / elapsed, elapsed)
    finally:
        progress.close()
    return LoopResult(steps, elapsed, loss)
