"""The machine's speed taken out of val_bpb: a regression adjustment (ANCOVA / CUPED) with a covariate the change
cannot move.

Under a time budget a run's val_bpb depends on how many steps the machine gave it: a GPU a little hotter, a CPU
shared with other jobs, trains fewer steps and scores worse, whatever the change. Every training times a small
fixed workload at intervals (training/loop.py: SpeedProbe) and records its rate, `machine_speed` (GFLOP/s of that
workload); the change cannot move it, since the workload is the same whatever the block. With x = ln(speed),
    val_bpb = config's own level + slope * x + noise,
and a paired gain (incumbent - candidate on one seed) adjusted to equal speeds is
    gain - slope * (x_incumbent - x_candidate).

The slope is learned from the run's own repeated runs of one config (the within-config regression of val_bpb on x,
pooled over configs, as ANCOVA does), combined with a prior slope that counts as `prior_runs` runs of a 1% speed
spread (decide.speed). Under a steps or FLOP budget the machine's speed cannot change what is trained, so the
adjustment is off there (decide.speed.adjust: auto).
"""
from __future__ import annotations

import math
import statistics

from research.judging.pairing import config_runs, config_speeds, parse_runs


def log_speed(speed) -> float | None:
    try:
        value = float(speed)
    except (TypeError, ValueError):
        return None
    return math.log(value) if value > 0 and math.isfinite(value) else None


def adjustment_enabled(settings: dict) -> bool:
    """decide.speed.adjust, resolved: flows.compose turns `auto` into true for time budgets, false otherwise."""
    return (settings.get("speed") or {}).get("adjust") in (True, "true")


def within_config_moments(rows: list[dict]) -> tuple[float, float]:
    """(Sxx, Sxy): x = ln(speed) and y = val_bpb around each config's own means, over the configs with two or more
    runs that recorded a speed."""
    values, speeds = config_runs(rows), config_speeds(rows)  # as measured: the slope is fitted on those
    sxx = sxy = 0.0
    for exp, runs in values.items():
        pairs = [(log_speed(speeds.get(exp, {}).get(seed)), value) for seed, value in runs.items()]
        pairs = [(x, y) for x, y in pairs if x is not None]
        if len(pairs) < 2:
            continue
        mean_x = statistics.fmean(x for x, _ in pairs)
        mean_y = statistics.fmean(y for _, y in pairs)
        sxx += sum((x - mean_x) ** 2 for x, _ in pairs)
        sxy += sum((x - mean_x) * (y - mean_y) for x, y in pairs)
    return sxx, sxy


# The spread of ln(speed) a prior run is taken to have: 1% (an H200's step count varies by 0.82% between runs).
# The prior counts as `prior_runs` such runs: a run whose speed barely varies barely moves the slope, and one
# whose speed swung (a loaded CPU) soon settles it.
PRIOR_RUN_LOG_SPEED_VARIANCE = 0.01 ** 2


def fit_speed(rows: list[dict], settings: dict) -> tuple[float, float]:
    """(slope, the degrees of freedom it took from the runs), from one pass over the runs.

    The slope is val_bpb per unit of ln(machine speed): the pooled within-config least-squares slope combined with
    the prior slope (a normal prior on the slope: the data's weight is its Sxx, the prior's `prior_runs` x a 1%
    spread), never above 0 (a faster machine trains more steps, which does not make a block worse). The degrees of
    freedom are Sxx / (prior weight + Sxx), from 0 (the prior alone) to 1 (the runs alone, whose spread the line
    then partly explains by construction). (0, 0) when the adjustment is off."""
    if not adjustment_enabled(settings):
        return 0.0, 0.0
    speed = settings["speed"]
    prior = float(speed["prior_slope"])
    prior_weight = float(speed["prior_runs"]) * PRIOR_RUN_LOG_SPEED_VARIANCE
    sxx, sxy = within_config_moments(rows)
    if prior_weight + sxx <= 0:
        return min(prior, 0.0), 0.0
    return min((prior_weight * prior + sxy) / (prior_weight + sxx), 0.0), sxx / (prior_weight + sxx)


def speed_slope(rows: list[dict], settings: dict) -> float:
    return fit_speed(rows, settings)[0]


def fitted_df(rows: list[dict], settings: dict) -> float:
    return fit_speed(rows, settings)[1]


def adjust_runs(runs: dict[int, float], speeds: dict[int, float], slope: float, reference: float | None) -> dict[int, float]:
    """Each run's val_bpb as if trained at the reference speed (ln); a run without a speed is left as measured."""
    if not slope or reference is None:
        return dict(runs)
    adjusted = {}
    for seed, value in runs.items():
        x = log_speed(speeds.get(seed))
        adjusted[seed] = value if x is None else value - slope * (x - reference)
    return adjusted


def reference_log_speed(rows: list[dict]) -> float | None:
    """ln speed of the run's first measured training: adjusted figures read 'as fast as experiment 0 was'."""
    for row in sorted(rows, key=lambda r: int(r["exp"])):
        for _, speed in sorted(parse_runs(row.get("seed_speeds")).items()):
            x = log_speed(speed)
            if x is not None:
                return x
    return None


def adjusted_config_runs(rows: list[dict], slope: float) -> dict[int, dict[int, float]]:
    """research.judging.pairing.config_runs with every run adjusted to the reference speed (unchanged when slope is 0)."""
    runs = config_runs(rows)
    if not slope:
        return runs
    speeds, reference = config_speeds(rows), reference_log_speed(rows)
    return {exp: adjust_runs(values, speeds.get(exp, {}), slope, reference) for exp, values in runs.items()}
