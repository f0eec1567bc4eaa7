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


def _gather(rows: list[dict], own, paired_column: str) -> dict[int, dict[int, float]]:
    """Per config, by seed, what `own(row)` and the rows' `paired_column` recorded, in the order the runs were
    recorded (a seed recorded again moves to the end): the last seeds are the most recent runs."""
    gathered: dict[int, dict[int, float]] = {}
    for row in sorted(rows, key=lambda r: int(r["exp"])):
        if row.get("status") in ("crash", "skip"):
            continue
        for exp, runs in ((config_exp(row), own(row)),
                          (row.get("paired_exp"), parse_runs(row.get(paired_column)))):
            if exp is None:
                continue
            bucket = gathered.setdefault(int(exp), {})
            for seed, value in runs.items():
                bucket.pop(seed, None)
                bucket[seed] = value
    return gathered


def config_runs(rows: list[dict]) -> dict[int, dict[int, float]]:
    """Every config's runs (val_bpb by seed, oldest first), keyed by the experiment that introduced the config."""
    return _gather(rows, own_runs, "incumbent_runs")


def config_speeds(rows: list[dict]) -> dict[int, dict[int, float]]:
    """Every config's runs' machine speed (research/judging/speed.py) by seed, where the training measured one."""
    return _gather(rows, lambda row: parse_runs(row.get("seed_speeds")), "incumbent_speeds")


@dataclass(frozen=True)
class Incumbent:
    """The config every new candidate is judged against: the last keep, or the default block."""

    exp: int
    runs: dict[int, float]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.runs.values()) if self.runs else None


def incumbent(rows: list[dict], by_config: dict[int, dict[int, float]] | None = None) -> Incumbent:
    """`by_config`: the runs to read (research.judging.speed adjusts them to one machine speed); default as measured."""
    keeps = [int(row["exp"]) for row in rows if row.get("status") == "keep"]
    exp = max(keeps) if keeps else BASELINE_EXP
    runs = config_runs(rows) if by_config is None else by_config
    return Incumbent(exp, dict(runs.get(exp, {})))


def next_pair_seed(incumbent_seeds, candidate_seeds, first_seed: int, excluded=()) -> tuple[int, bool]:
    """(seed, the incumbent must run it too) for a candidate's next pair: first a seed the candidate ran and the
    incumbent lacks, then the incumbent's seeds from its most recent run back (a recent run shares the machine's
    current state with the candidate's: slow drift stays out of the gain), then a new one. `incumbent_seeds` is
    in the order the runs were recorded; `excluded` seeds (a run on them failed) are never asked for again."""
    excluded = set(int(s) for s in excluded)
    lacking = sorted(int(s) for s in candidate_seeds if s not in incumbent_seeds and int(s) not in excluded)
    if lacking:
        return lacking[0], True
    existing = list(dict.fromkeys(int(s) for s in incumbent_seeds))
    for seed in reversed(existing) if existing else [int(first_seed)]:
        if seed not in candidate_seeds and seed not in excluded:
            return seed, seed not in existing
    highest = max([*existing, *(int(s) for s in candidate_seeds), *excluded, int(first_seed)])
    return highest + 1, True


def paired_gains(candidate: dict[int, float], incumbent_runs: dict[int, float]) -> list[tuple[int, float]]:
    """(seed, incumbent - candidate) on every seed both ran, in seed order: positive = the candidate is better."""
    return [(seed, incumbent_runs[seed] - candidate[seed]) for seed in sorted(candidate) if seed in incumbent_runs]


@dataclass(frozen=True)
class Noise:
    """How much val_bpb moves between seeds of one config, and between the two halves of a pair."""

    seed_sd: float | None   # pooled over every config with runs on two or more seeds
    seed_df: float          # their degrees of freedom (less what a fitted speed slope used)
    paired_sd: float | None  # spread of paired gains around their mean: the kind's (when asked for one), else pooled
    paired_df: int           # degrees of freedom measured for paired_sd (the kind's own, when asked for one)
    pooled_sd: float | None = None  # the pooled paired spread over every kind: the kind's prior
    df: float = 0.0          # degrees of freedom paired_sd rests on: the seeds' and the pairs' (for a kind: its
                             # prior's weight, at most the pooled figure's, and its own pairs)


def _pooled(groups: list[list[float]]) -> tuple[float, int]:
    """(sum of squares around each group's mean, degrees of freedom) over groups of two or more values."""
    total, df = 0.0, 0
    for values in groups:
        if len(values) >= 2:
            mean = statistics.fmean(values)
            total += sum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    return total, df


def _shrunk(prior_var: float, prior_weight: float, ss: float, df: int) -> float | None:
    """A scaled inverse chi-square update: the prior variance worth `prior_weight` degrees of freedom, then the
    measured sum of squares; None with neither."""
    weight = prior_weight + df
    return math.sqrt((prior_weight * prior_var + ss) / weight) if weight > 0 else None


def paired_gain_groups(rows: list[dict], by_config: dict[int, dict[int, float]]) -> list[tuple[str | None, list[float]]]:
    """(change kind, its paired gains) of every judged candidate, read from `by_config` on the seeds it ran."""
    groups = []
    for row in rows:
        if row.get("paired_exp") is None or row.get("status") not in ("keep", "discard"):
            continue
        own_seeds = own_runs(row)
        own = {seed: value for seed, value in by_config.get(config_exp(row), {}).items() if seed in own_seeds}
        reference = by_config.get(int(row["paired_exp"]), {})
        groups.append((row.get("change_kind"), [gain for _, gain in paired_gains(own, reference)]))
    return groups


def estimate_noise(rows: list[dict], prior_df: float, by_config: dict[int, dict[int, float]] | None = None,
                   kind: str | None = None, kind_prior_df: float = 2.0, kind_unpaired: bool = False,
                   fitted_df: float = 0.0) -> Noise:
    """Seed-to-seed and paired noise, from every run the ledger holds (`by_config`: research.judging.speed's adjusted
    runs; default as measured).

    The paired spread cannot exceed sqrt(2) x the seed-to-seed spread (a pair's difference removes the seed's
    shared offset and adds nothing), so sqrt(2) x seed sd is a safe prior for it, worth `prior_df` degrees of
    freedom; each candidate paired on k seeds adds k - 1 degrees of freedom of measured paired spread, and the
    estimate moves from the safe prior to what the run itself shows (a scaled inverse chi-square update).

    With a `kind` (conf/space.yaml kinds: shape, batch, optimizer, ...), the paired spread is that kind's: its own
    candidates' spread, with the pooled figure as its prior worth `kind_prior_df` degrees of freedom, so a kind of
    change that moves val_bpb more between seeds is judged with its own, larger noise once the run has seen it.
    `fitted_df`: the degrees of freedom the speed slope took from the adjusted runs (research.judging.speed.fitted_df).
    `kind_unpaired`: a kind whose changes reshape the model or its batches draws other random numbers from the same
    seed, so the seed's offset does not cancel in its pairs; its prior is then the safe sqrt(2) x seed sd.
    """
    by_config = config_runs(rows) if by_config is None else by_config
    seed_ss, seed_df = _pooled([list(runs.values()) for runs in by_config.values()])
    if fitted_df:  # the runs were adjusted by a slope fitted to them: it used up some of their spread
        seed_df -= fitted_df
        if seed_df < 1:  # nearly an exact fit (two baselines whose speeds differ a lot): their raw spread, the safe side
            seed_ss, seed_df = _pooled([list(runs.values()) for runs in config_runs(rows).values()])
    seed_sd = math.sqrt(seed_ss / seed_df) if seed_df > 0 else None
    groups = paired_gain_groups(rows, by_config)
    paired_ss, paired_df = _pooled([gains for _, gains in groups])
    prior_weight = prior_df if seed_sd is not None else 0.0
    pooled = _shrunk(2.0 * seed_sd ** 2 if seed_sd is not None else 0.0, prior_weight, paired_ss, paired_df)
    if kind is None or pooled is None:
        return Noise(seed_sd, seed_df, pooled, paired_df, pooled, max(seed_df, 0) + paired_df)
    kind_ss, kind_df = _pooled([gains for group_kind, gains in groups if group_kind == kind])
    prior_var = max(pooled ** 2, 2.0 * seed_sd ** 2) if kind_unpaired and seed_sd is not None else pooled ** 2
    kind_prior = min(kind_prior_df, max(seed_df, 0) + paired_df)
    return Noise(seed_sd, seed_df, _shrunk(prior_var, kind_prior_df, kind_ss, kind_df), kind_df, pooled,
                 kind_prior + kind_df)
