"""The keep line of a run: for each experiment, the val_bpb its first run had to beat to be kept at once.

It is the incumbent's val_bpb minus research.decide.keep_margin over the rows recorded before the experiment,
with the run's own `decide` settings (research/run_settings.py). A point between the best so far and this line
was better, but inside the noise: the plot shades that band.
"""
from __future__ import annotations

from research.decide import keep_margin


def keep_lines(rows: list[dict], best_before: dict[int, float], settings: dict) -> dict[int, float]:
    """{exp: keep line} for every experiment after the baselines that has a best before it (`best_before`,
    the staircase's value when it started)."""
    ordered = sorted(rows, key=lambda row: int(row["exp"]))
    lines: dict[int, float] = {}
    for index, row in enumerate(ordered):
        exp = int(row["exp"])
        if row.get("status") == "baseline" or exp not in best_before:
            continue
        margin = keep_margin(ordered[:index], settings)
        if margin is not None:
            lines[exp] = best_before[exp] - margin
    return lines
