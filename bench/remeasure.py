"""Re-measure the best configs of finished research runs on fresh seeds: their gain without the luck of the keep.

    python bench/remeasure.py RUN_DIR [RUN_DIR ...] [--first-seed 1000] [--repeats 6] (--seconds S | --steps N)
                              [the overrides the runs were started with...]

A run's own gain (its baselines' mean minus its best kept val_bpb) is the score of the winner of noisy
comparisons: a change that does nothing is sometimes kept on a lucky draw, and a real one is kept more often
on a lucky draw than an unlucky one, so the figure is biased upwards, by more for a proposer that draws
many neutral changes. Here the default block and every distinct best config are trained again, as the
baselines of one `autoresearch run` each, on REPEATS seeds that no given run used (FIRST_SEED, +1, ...).
A config's gain is the mean of its differences from the default on the same seed; a run that kept nothing
has gained 0 by definition. Prints the configs, the runs, and per proposer the mean of both figures.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu_runs import (Record, add_budget_arguments, budget_overrides, keep_time_gain,  # noqa: E402
                            kept_overrides, load, proposer_of, run_flow)
from bench.paired_stats import pairwise_lines  # noqa: E402
from research.judging.pairing import parse_runs  # noqa: E402
from research.judging.verdict import finite_or_none  # noqa: E402
from research.reporting.run_costs import run_costs  # noqa: E402
from research.records.layout import RunLayout  # noqa: E402
from research.records.ledger import Ledger  # noqa: E402


@dataclass(frozen=True)
class FinishedRun:
    name: str
    proposer: str
    base_seed: int
    keep_time_gain: float
    best: tuple[str, ...]  # Hydra overrides of the default block; () when nothing was kept
    seeds_used: frozenset[int]
    trainings: int = 0  # what the run spent, paired runs included (research/reporting/run_costs.py)
    training_hours: float = 0.0
    crashes: int = 0

    @classmethod
    def read(cls, run_dir: Path, name: str) -> "FinishedRun":
        results = RunLayout(run_dir).results
        rows = Ledger(results).rows()
        if not rows:
            raise ValueError(f"{results} has no rows")
        return cls.of_rows(rows, name)

    @classmethod
    def of_rows(cls, rows: list[dict], name: str) -> "FinishedRun":
        """From a run's ledger rows (its results.tsv, or the copy bench/proposer_cpu.py --record keeps)."""
        costs = run_costs(rows)
        return cls(name, proposer_of(rows), int(rows[0]["seed"]), keep_time_gain(rows), kept_overrides(rows),
                   frozenset(seed for row in rows for seed in seeds_trained(row)),
                   costs.trainings, costs.training_hours, sum(row["status"] == "crash" for row in rows))


def seeds_trained(row: dict) -> set[int]:
    """Every seed a ledger row trained on: its own, its paired runs', and the incumbent's it trained for it."""
    seeds = set(parse_runs(row.get("seed_runs"))) | set(parse_runs(row.get("incumbent_runs")))
    return seeds | ({int(row["seed"])} if row.get("seed") is not None else set())


@dataclass(frozen=True)
class PairedGain:
    mean: float
    stderr: float | None  # None with one pair
    pairs: int


def paired_gain(default: dict[int, float], config: dict[int, float]) -> PairedGain:
    """Mean over the seeds both measured of default minus config (positive: the config is better)."""
    diffs = [default[seed] - config[seed] for seed in sorted(default.keys() & config.keys())]
    if not diffs:
        raise ValueError("no seed was measured for both the default and the config")
    stderr = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return PairedGain(statistics.fmean(diffs), stderr, len(diffs))


def measure(overrides: tuple[str, ...], first_seed: int, repeats: int, common: list[str], work_dir: Path,
            record: Record | None = None) -> tuple[dict[int, float], float]:
    """val_bpb by seed of one config trained on `repeats` seeds, and its mean step count; read from the record
    when it holds this measurement already."""
    # Named by what it measures, so a record finds it again whatever else was measured beside it.
    tag = f"remeasure-{first_seed}x{repeats}-{hashlib.sha1(' '.join(overrides).encode()).hexdigest()[:10]}"
    flow_overrides = [*common, *overrides, f"hparams.seed={first_seed}", f"decide.baseline_repeats={repeats}",
                      f"research.max_experiments={repeats}"]
    try:
        rows, _ = record.flow(tag, flow_overrides) if record else run_flow(tag, work_dir, flow_overrides)
    except subprocess.CalledProcessError:
        # The flow stops at a crashed baseline, and every training here is one.
        raise SystemExit(f"Training {' '.join(overrides) or 'the default block'} failed; its log is under "
                         f"{(record.runs_dir if record else work_dir) / tag}.") from None
    values = {int(row["seed"]): finite_or_none(row["val_bpb"]) for row in rows if row["status"] == "baseline"}
    steps = [row["steps"] for row in rows if row["status"] == "baseline" and row.get("steps") is not None]
    return {seed: value for seed, value in values.items() if value is not None}, statistics.fmean(steps or [0])


def remeasure(runs: list[FinishedRun], first_seed: int, repeats: int, common: list[str], work_dir: Path,
              record: Record | None = None) -> None:
    """`common`: the overrides every training shares (the budget, and any the runs were started with). With a
    record (bench/proposer_cpu.py --record), each config's measurement is kept there and read back."""
    fresh = set(range(first_seed, first_seed + repeats))
    for run in runs:
        if run.seeds_used & fresh:
            raise SystemExit(f"{run.name} already trained on seeds {sorted(run.seeds_used & fresh)}; "
                             f"pick --first-seed outside the runs' seeds.")
    configs = [()] + sorted({run.best for run in runs} - {()})
    print(f"load average (1 / 5 / 15 min) at the start: {load()}\n")
    print(f"| config | found by | steps | val_bpb (mean of {repeats} seeds from {first_seed}) | "
          "re-measured gain (paired mean +- s.e.) |")
    print("|---|---|---:|---:|---:|")
    measured: dict[tuple[str, ...], dict[int, float]] = {}
    gains: dict[tuple[str, ...], float] = {(): 0.0}
    for config in configs:
        measured[config], steps = measure(config, first_seed, repeats, common, work_dir, record)
        finders = ", ".join(run.name for run in runs if run.best == config) or "-"
        label = " ".join(o.removeprefix("hparams.") for o in config) or "default block"
        mean_bpb = statistics.fmean(measured[config].values())
        if config:
            gain = paired_gain(measured[()], measured[config])
            gains[config] = gain.mean
            spread = f" +- {gain.stderr:.4f}" if gain.stderr is not None else ""
            shown = f"{gain.mean:.4f}{spread} ({gain.pairs} pairs)"
        else:
            shown = "0 (the reference)"
        print(f"| {label} | {finders} | {steps:.1f} | {mean_bpb:.4f} | {shown} |", flush=True)
    print(f"\nload average at the end: {load()}\n")
    print("| run | proposer | base seed | gain at keep time | re-measured gain |")
    print("|---|---|---:|---:|---:|")
    for run in runs:
        print(f"| {run.name} | {run.proposer} | {run.base_seed} | {run.keep_time_gain:.4f} | {gains[run.best]:.4f} |")
    summary(runs, gains)


def summary(runs: list[FinishedRun], gains: dict[tuple[str, ...], float]) -> None:
    proposers = sorted({run.proposer for run in runs})
    for proposer in proposers:
        own = [run for run in runs if run.proposer == proposer]
        print(f"\n{proposer}: {len(own)} run(s), mean gain at keep time "
              f"{statistics.fmean(run.keep_time_gain for run in own):.4f}, "
              f"re-measured {statistics.fmean(gains[run.best] for run in own):.4f}")
        hours = sum(run.training_hours for run in own)
        if hours:  # runs read from their ledgers (not made up in a test) know what they spent
            print(f"{proposer}: {statistics.fmean(run.trainings for run in own):.1f} trainings and "
                  f"{statistics.fmean(run.crashes for run in own):.1f} crashes per run; re-measured gain per "
                  f"training hour {sum(gains[run.best] for run in own) / hours:.4f}")
    # Pairs over the base seeds every proposer ran: one run per proposer and base seed
    by_seed = {(run.proposer, run.base_seed): run for run in runs}
    seeds = sorted(set.intersection(*({run.base_seed for run in runs if run.proposer == p} for p in proposers)))
    if len(proposers) > 1 and len(seeds) > 1:
        for what, gain_of in (("at keep time", lambda run: run.keep_time_gain), ("re-measured", lambda run: gains[run.best])):
            print(f"\nGains {what}, per base seed ({', '.join(map(str, seeds))}):\n")
            print("\n".join(pairwise_lines({p: [gain_of(by_seed[p, seed]) for seed in seeds] for p in proposers})))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="runs/<tag> folders of finished runs")
    parser.add_argument("--first-seed", type=int, default=1000, help="the fresh seeds are this one and the next")
    parser.add_argument("--repeats", type=int, default=6, help="seeds per config")
    add_budget_arguments(parser)
    args, extra = parser.parse_known_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2: one pair has no spread")
    missing = [str(d) for d in args.run_dirs if not RunLayout(d).results.is_file()]
    if missing:
        parser.error(f"no results.tsv in {', '.join(missing)}")
    names = [d.name for d in args.run_dirs]
    if len(set(names)) < len(names):  # bench-local from two benchmark folders: name them by the folder too
        names = [f"{d.parent.name}/{d.name}" for d in args.run_dirs]
    runs = [FinishedRun.read(d, name) for d, name in zip(args.run_dirs, names)]
    work_dir = Path(tempfile.mkdtemp(prefix="bench-remeasure-"))
    remeasure(runs, args.first_seed, args.repeats, [*budget_overrides(args), *extra], work_dir)
    print(f"runs kept in {work_dir}")


if __name__ == "__main__":
    main()
