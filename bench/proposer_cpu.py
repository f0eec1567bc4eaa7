"""Local proposer against random on real CPU-preset training: val_bpb gained after N proposals.

    python bench/proposer_cpu.py [--proposals 16] [--baselines 2] [--proposers local,tpe,random]
                                 [--base-seeds 42,7,...] [--remeasure REPEATS] [--flops F | --seconds S | --steps N]
                                 [extra overrides...]

Runs `autoresearch run` on the bundled dataset with the cpu preset, once per proposer and base seed, each with
BASELINES baselines (seeds S, S+1, ...) and PROPOSALS experiments, then prints the gain of each run: the mean of
its baselines minus its best kept val_bpb, and with several base seeds the mean gain per proposer and, per pair
of proposers, the Wilcoxon signed-rank test over base seeds. The default budget is the cpu preset's FLOP budget:
the machine's load cannot change what a training trains, and a bigger model still pays for its compute with
fewer steps. A time budget (--seconds) needs a quiet machine: under load the steps done in S seconds swing, so
the load average is printed before and after. A steps budget is immune to load but gives compute away, so it
rewards the biggest model a proposer dares to try. One run is a single sample, not a distribution:
`--base-seeds` draws more (other baseline seeds, other proposals).

That gain is the score of the winner of noisy comparisons, so it carries the luck of the keep. `--remeasure R`
then trains the default block and every run's best config on R fresh seeds (bench/remeasure.py) and prints
each run's gain measured that way too.

The whole comparison is hours of training, more than one sitting. `--record DIR` keeps it across sittings: each
finished run's ledger is copied to DIR/<tag>.tsv (commit them: they are the data), a run already there is read
instead of trained, and the runs train under runs/bench-proposers-<DIR's name>/, so one stopped midway resumes
there (the product's own resume). DIR/settings.json pins what the runs were started with, and the dtype the
machine trains in (bf16 or fp32, by its CPU): a record is only ever extended with runs made the same way.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu_runs import (Record, add_budget_arguments, baseline_mean, budget_overrides, cpu_arithmetic,  # noqa: E402
                            load, run_flow)
from bench.paired_stats import pairwise_lines  # noqa: E402
from bench.remeasure import FinishedRun, remeasure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=16)
    parser.add_argument("--baselines", type=int, default=2, help="baseline repeats: their spread is the noise sigma")
    parser.add_argument("--proposers", default="local,random",
                        help="comma-separated conf/proposer names: local, tpe, random (hybrid and claude need "
                             "ANTHROPIC_API_KEY)")
    add_budget_arguments(parser)
    parser.add_argument("--base-seeds", default="42", help="comma-separated base seeds, one run per proposer each")
    parser.add_argument("--remeasure", type=int, default=0, metavar="REPEATS",
                        help="then train the default and every best config on REPEATS fresh seeds (bench/remeasure.py)")
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="keep each finished run's ledger in DIR and read the runs already there instead of "
                             "training them again (a comparison over several sittings)")
    args, extra = parser.parse_known_args()
    proposers = [name for name in args.proposers.split(",") if name]
    known = sorted(path.stem for path in (ROOT / "conf" / "proposer").glob("*.yaml"))
    if not proposers or set(proposers) - set(known):
        parser.error(f"--proposers takes names of {', '.join(known)}, comma-separated; got {args.proposers!r}")
    try:
        seeds = [int(seed) for seed in args.base_seeds.split(",") if seed]
    except ValueError:
        parser.error(f"--base-seeds takes comma-separated integers; got {args.base_seeds!r}")
    if not seeds or any(arg.startswith("hparams.seed=") for arg in extra):
        parser.error("give the base seeds with --base-seeds, not hparams.seed=")
    budget = budget_overrides(args)
    record = None
    if args.record:
        # The machine's arithmetic is pinned too: the sittings may be on other machines, and a run trained in
        # fp32 is no pair for one trained in bf16.
        record = Record(args.record, {"baselines": args.baselines, "proposals": args.proposals,
                                      "overrides": [*budget, *extra], "arithmetic": cpu_arithmetic()})
        runs_dir = record.runs_dir
    else:
        runs_dir = Path(tempfile.mkdtemp(prefix="bench-proposers-"))
    print(f"load average (1 / 5 / 15 min) at the start: {load()}\n")
    print(f"| base seed | proposer | baseline val_bpb (mean of {args.baselines}) | best val_bpb | gain | keeps | "
          "crashes | skips | trainings | training hours | minutes |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    gains: dict[str, list[float]] = {proposer: [] for proposer in proposers}
    finished: list[FinishedRun] = []
    for seed in seeds:
        for proposer in proposers:
            tag = f"bench-{proposer}-s{seed}"
            overrides = [f"proposer={proposer}", *budget, f"hparams.seed={seed}",
                         f"research.max_experiments={args.baselines + args.proposals}",
                         f"decide.baseline_repeats={args.baselines}", *extra]
            rows, wall = record.flow(tag, overrides) if record else run_flow(tag, runs_dir, overrides)
            minutes = "recorded" if wall is None else f"{wall / 60:.1f}"
            run = FinishedRun.of_rows(rows, tag)
            finished.append(run)
            baseline, best = baseline_mean(rows), rows[-1]["best_val_bpb"]
            count = lambda status: sum(r["status"] == status for r in rows)  # noqa: E731
            gains[proposer].append(run.keep_time_gain)
            print(f"| {seed} | {proposer} | {baseline:.4f} | {best:.4f} | {run.keep_time_gain:.4f} | {count('keep')} | "
                  f"{run.crashes} | {count('skip')} | {run.trainings} | {run.training_hours:.2f} | {minutes} |",
                  flush=True)
    print(f"\nload average at the end: {load()}")
    means = {proposer: sum(values) / len(values) for proposer, values in gains.items()}
    for proposer, mean in means.items():
        print(f"{proposer}: mean gain {mean:.4f} over {len(gains[proposer])} base seed(s)")
    if len(seeds) > 1 and len(means) > 1:
        print("\nGains at keep time, per base seed:\n")
        print("\n".join(pairwise_lines(gains)))
    if args.remeasure:
        # Past every seed the runs trained on, and the same whichever runs a record holds yet: a recorded
        # re-measurement stays valid when more runs join it.
        first_fresh = max(1000, 1 + max(seed for run in finished for seed in run.seeds_used))
        print(f"\nRe-measured on seeds {first_fresh} to {first_fresh + args.remeasure - 1}:\n")
        remeasure(finished, first_fresh, args.remeasure, [*budget, *extra], runs_dir, record)
    print(f"runs kept in {runs_dir}")


if __name__ == "__main__":
    main()
