"""Who was trained on which seed, read back from the ledger's rows: the facts paired decisions rest on.

A row records the runs of its own config (`seed_runs`, "seed:val_bpb" pairs) and the runs of the incumbent it
was paired with (`paired_exp`) that had to be trained for its decision (`incumbent_runs`). A config's runs are
therefore spread over several rows; `config_runs` gathers them. The baseline rows are all runs of one config,
the default block, filed under experiment 0. Rows written before these columns existed count as one run on
their `seed`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

BASELINE_EXP = 0  # every baseline row is a run of the default block, whose experiment number is 0


def format_runs(runs: dict[int, float]) -> str | None:
    """"42:2.0311 43:2.0250": seeds ascending, values with repr() so they read back bit-identical."""
    if not runs:
        return None
    return " ".join(f"{int(seed)}:{float(value)!r}" for seed, value in sorted(runs.items()))


def parse_runs(text: Any) -> dict[int, float]:
    """The inverse of format_runs; a damaged pair is left out (a hand-edited ledger must not stop a run)."""
    runs: dict[int, float] = {}
    for item in str(text or "").split():
        seed, _, value = item.partition(":")
        try:
            number = float(value)
            runs[int(seed)] = number
        except ValueError:
            continue
        if not math.isfinite(number):
            runs.pop(int(seed))
    return runs


def own_runs(row: dict) -> dict[int, float]:
    """The runs of this row's config that the row recorded (legacy rows: its one run on `seed`)."""
    runs = parse_runs(row.get("seed_runs"))
    if runs:
        return runs
    value, seed = row.get("val_bpb"), row.get("seed")
    try:
        if seed is not None and value is not None and math.isfinite(float(value)):
            return {int(seed): float(value)}
    except (TypeError, ValueError):
        pass
    return {}


def config_exp(row: dict) -> int:
    return BASELINE_EXP if row.get("status") == "baseline" else int(row["exp"])


def config_runs(rows: list[dict]) -> dict[int, dict[int, float]]:
    """Every config's runs by seed, keyed by the experiment that introduced the config."""
    runs: dict[int, dict[int, float]] = {}
    for row in sorted(rows, key=lambda r: int(r["exp"])):
        if row.get("status") in ("crash", "skip"):
            continue
        runs.setdefault(config_exp(row), {}).update(own_runs(row))
        paired = row.get("paired_exp")
        if paired is not None:
            runs.setdefault(int(paired), {}).update(parse_runs(row.get("incumbent_runs")))
    return runs


@dataclass(frozen=True)
class Incumbent:
    """The config every new candidate is judged against: the last keep, or the default block."""

    exp: int
    runs: dict[int, float]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.runs.values()) if self.runs else None


def incumbent(rows: list[dict]) -> Incumbent:
    keeps = [int(row["exp"]) for row in rows if row.get("status") == "keep"]
    exp = max(keeps) if keeps else BASELINE_EXP
    return Incumbent(exp, dict(config_runs(rows).get(exp, {})))


def next_pair_seed(incumbent_seeds, candidate_seeds, first_seed: int) -> tuple[int, bool]:
    """(seed, the incumbent must run it too) for a candidate's next pair: first a seed the candidate ran and the
    incumbent lacks, then the incumbent's seeds in order, then a new one."""
    lacking = sorted(int(s) for s in candidate_seeds if s not in incumbent_seeds)
    if lacking:
        return lacking[0], True
    existing = sorted(set(int(s) for s in incumbent_seeds))
    for seed in existing or [int(first_seed)]:
        if seed not in candidate_seeds:
            return seed, seed not in existing
    highest = max([*existing, *(int(s) for s in candidate_seeds), int(first_seed)])
    return highest + 1, True


def paired_gains(candidate: dict[int, float], incumbent_runs: dict[int, float]) -> list[tuple[int, float]]:
    """(seed, incumbent - candidate) on every seed both ran, in seed order: positive = the candidate is better."""
    return [(seed, incumbent_runs[seed] - candidate[seed]) for seed in sorted(candidate) if seed in incumbent_runs]


@dataclass(frozen=True)
class Noise:
    """How much val_bpb moves between seeds of one config, and between the two halves of a pair."""

    seed_sd: float | None   # pooled over every config with runs on two or more seeds
    seed_df: int
    paired_sd: float | None  # pooled spread of a candidate's paired gains around their mean, shrunk to the prior
    paired_df: int


def _pooled(groups: list[list[float]]) -> tuple[float, int]:
    """(sum of squares around each group's mean, degrees of freedom) over groups of two or more values."""
    total, df = 0.0, 0
    for values in groups:
        if len(values) >= 2:
            mean = statistics.fmean(values)
            total += sum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    return total, df


def estimate_noise(rows: list[dict], prior_df: float) -> Noise:
    """Seed-to-seed and paired noise, from every run the ledger holds.

    The paired spread cannot exceed sqrt(2) x the seed-to-seed spread (a pair's difference removes the seed's
    shared offset and adds nothing), so sqrt(2) x seed sd is a safe prior for it, worth `prior_df` degrees of
    freedom; each candidate paired on k seeds adds k - 1 degrees of freedom of measured paired spread, and the
    estimate moves from the safe prior to what the run itself shows (a scaled inverse chi-square update).
    """
    by_config = config_runs(rows)
    seed_ss, seed_df = _pooled([list(runs.values()) for runs in by_config.values()])
    seed_sd = math.sqrt(seed_ss / seed_df) if seed_df else None
    gain_groups = []
    for row in rows:
        if row.get("paired_exp") is None or row.get("status") not in ("keep", "discard"):
            continue
        reference = by_config.get(int(row["paired_exp"]), {})
        gain_groups.append([gain for _, gain in paired_gains(own_runs(row), reference)])
    paired_ss, paired_df = _pooled(gain_groups)
    prior_weight = prior_df if seed_sd is not None else 0.0
    weight = prior_weight + paired_df
    if weight <= 0:
        return Noise(seed_sd, seed_df, None, paired_df)
    prior_var = 2.0 * seed_sd ** 2 if seed_sd is not None else 0.0
    paired_sd = math.sqrt((prior_weight * prior_var + paired_ss) / weight)
    return Noise(seed_sd, seed_df, paired_sd, paired_df)
