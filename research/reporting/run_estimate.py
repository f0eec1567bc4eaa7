"""How long the experiments left in a run will take, as well as it can be said before they run.

Measured beats guessed: once the ledger holds finished experiments, their mean wall time (pairs, compile and
evaluation included) times the experiments left. Before that, only a time budget allows a guess.
"""
from __future__ import annotations

import math

# A proposal costs ~1.45 trainings under the paired rule (README: bench/decide_sim.py's 1.4-1.5); a baseline one.
TRAININGS_PER_PROPOSAL = 1.45
# Process start, compile and evaluation on top of the budget: the cpu preset's 60 s trainings took ~120 s each
# in `make run` (BENCHMARKS.md); on a GPU compile and a 20M-token evaluation are of the same order.
OVERHEAD_FACTOR = 1.0
OVERHEAD_SECONDS = 20.0


def budget_text(budget: dict) -> str:
    if budget["kind"] == "steps":
        return f"{budget['steps']} steps"
    if budget["kind"] == "flops":
        return f"{float(budget['flops']):.3g} FLOPs"
    return f"{float(budget['seconds']):g} s"


def measured_seconds(rows: list[dict]) -> list[float]:
    values = []
    for row in rows:
        try:
            value = float(row.get("total_seconds"))
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0 and row.get("status") != "skip":
            values.append(value)
    return values


def estimate_seconds(budget: dict, rows: list[dict], planned: int, baseline_repeats: int) -> float | None:
    """Seconds for the experiments from len(rows) up to `planned`; None when there is no basis for a number."""
    left = max(0, planned - len(rows))
    if left == 0:
        return 0.0
    measured = measured_seconds(rows)
    if measured:
        return left * sum(measured) / len(measured)
    if budget.get("kind") != "time":
        return None  # a steps or FLOP budget's time depends on the model and machine: wait for the first experiment
    per_training = float(budget["seconds"]) * (1 + OVERHEAD_FACTOR) + OVERHEAD_SECONDS
    baselines = max(0, min(left, baseline_repeats - len(rows)))
    return per_training * (baselines + (left - baselines) * TRAININGS_PER_PROPOSAL)
