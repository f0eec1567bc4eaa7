"""The budgeted optimisation loop every backend shares: schedule, budget, fault injection, loss checks,
progress, and the garbage collector. A backend supplies its optimizer's param groups (plain dicts, whose live
lr and weight decay this loop sets through optim.schedule.apply_schedule) and `step() -> loss`, one optimizer
step over the full batch.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Callable

from optim.schedule import apply_schedule
from training.budget import Budget
from training.faults import Fault
from training.outcome import check_loss, explosion_limit
from training.progress import Progress


@dataclass
class LoopResult:
    steps: int
    training_seconds: float
    final_loss: float


def budgeted_training(step: Callable[[], float], param_groups: list[dict], budget: Budget, schedule: dict,
                      fault: Fault | None, vocab_size: int, tokens_per_step: int,
                      log_every_seconds: float) -> LoopResult:
    """Run optimizer steps until the budget is used. `step` must return the step's mean loss as a float,
    which forces the device to finish the step, so the clock measures real work."""
    limit = explosion_limit(vocab_size)
    progress = Progress(budget.describe(), log_every_seconds)
    steps, elapsed, loss = 0, 0.0, float("nan")
    # Everything built so far (model, optimizer, compiled graphs) lives to the end: freezing it keeps the
    # collector from walking it again, and a full collection in the middle of a step stalls it (the reference
    # trainer measured ~500 ms). Collection stays on, for the short-lived objects of each step.
    gc.collect()
    gc.freeze()
    try:
        while budget.has_room(steps, elapsed):
            started = time.time()
            apply_schedule(param_groups, budget.progress(steps, elapsed), schedule)
            loss = step()
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
        gc.unfreeze()
    return LoopResult(steps, elapsed, loss)
