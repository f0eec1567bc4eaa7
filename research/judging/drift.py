"""How far the incumbent's own runs moved over a run: drift of the machine (a neighbour, heat, a driver) that pairing
keeps out of the gains but a reader should see.

Every config's runs are in the ledger with the experiment at which each was recorded (pairing.config_runs, the
incumbent's runs spread over the rows that paired with it). Within each config with two or more runs, val_bpb is
regressed on that experiment number (pooled within-config least squares, as research/judging/speed.py does for speed);
the slope times the run's span is how far one config's val_bpb moved from the first experiment to the last, with
its standard error. decide.control_every makes sure the incumbent is re-run now and then, so there is something
to measure.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from research.judging.pairing import config_exp, own_runs, parse_runs


@dataclass(frozen=True)
class Drift:
    moved: float        # val_bpb change over the run's span of experiments (positive = later runs scored worse)
    se: float | None    # its standard error (None with too few runs to tell)
    runs: int           # runs of repeated configs it rests on
    span: int           # experiments from the first run to the last
    first: int = 0      # the experiment of the first run


def recorded_runs(rows: list[dict]) -> dict[int, list[tuple[int, float]]]:
    """Per config, (experiment that recorded the run, val_bpb) for every run, as measured."""
    runs: dict[int, list[tuple[int, float]]] = {}
    for row in sorted(rows, key=lambda r: int(r["exp"])):
        if row.get("status") in ("crash", "skip"):
            continue
        exp = int(row["exp"])
        runs.setdefault(config_exp(row), []).extend((exp, value) for value in own_runs(row).values())
        if row.get("paired_exp") is not None:
            runs.setdefault(int(row["paired_exp"]), []).extend(
                (exp, value) for value in parse_runs(row.get("incumbent_runs")).values())
    return runs


def incumbent_drift(rows: list[dict]) -> Drift | None:
    """The pooled within-config trend of val_bpb over the run; None before any config was run at three moments."""
    sxx = sxy = syy = 0.0
    count = groups = 0
    first, last = math.inf, -math.inf
    for runs in recorded_runs(rows).values():
        if len({exp for exp, _ in runs}) < 3:
            continue  # recorded at fewer than three moments: a config's first runs (two baselines) are its seed noise
        mean_x = statistics.fmean(exp for exp, _ in runs)
        mean_y = statistics.fmean(value for _, value in runs)
        sxx += sum((exp - mean_x) ** 2 for exp, _ in runs)
        sxy += sum((exp - mean_x) * (value - mean_y) for exp, value in runs)
        syy += sum((value - mean_y) ** 2 for _, value in runs)
        count, groups = count + len(runs), groups + 1
        first, last = min(first, *(exp for exp, _ in runs)), max(last, *(exp for exp, _ in runs))
    if groups == 0 or sxx <= 0:
        return None
    slope = sxy / sxx
    span = int(last - first)
    df = count - groups - 1  # one mean per config, one slope
    se = math.sqrt(max(syy - slope * sxy, 0.0) / df / sxx) * span if df > 0 else None
    return Drift(slope * span, se, count, span, int(first))
