"""Local proposer against random on real CPU-preset training: val_bpb gained after N proposals.

    python bench/proposer_cpu.py [--proposals 16] [--baselines 2] [--proposers local,random]
                                 [--base-seeds 42,7,...] (--seconds S | --steps N) [extra overrides...]

Runs `autoresearch run` on the bundled dataset with the cpu preset, once per proposer and base seed, each with
BASELINES baselines (seeds S, S+1, ...) and PROPOSALS experiments, then prints the gain of each run: the mean of
its baselines minus its best kept val_bpb, and with several base seeds the mean gain per proposer. A time budget
is the product's objective (a bigger model must pay for its compute) but needs a quiet machine: under load the
steps done in S seconds swing, so the load average is printed before and after. A steps budget is immune to
load but gives compute away, so it rewards the biggest model a proposer dares to try. One run is a single
sample, not a distribution: `--base-seeds` draws more (other baseline seeds, other proposals).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.ledger import Ledger  # noqa: E402


def run(proposer: str, seed: int, proposals: int, baselines: int, budget: list[str], runs_dir: Path,
        extra: list[str]) -> tuple[list[dict], float]:
    started = time.perf_counter()
    tag = f"bench-{proposer}-s{seed}"
    subprocess.run([sys.executable, "-m", "flows.cli", "run", "preset=cpu", f"proposer={proposer}",
                    f"tag={tag}", f"paths.runs_dir={runs_dir}", *budget, f"hparams.seed={seed}",
                    f"research.max_experiments={baselines + proposals}", f"decide.baseline_repeats={baselines}",
                    *extra], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return Ledger(runs_dir / tag / "results.tsv").rows(), time.perf_counter() - started


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=16)
    parser.add_argument("--baselines", type=int, default=2, help="baseline repeats: their spread is the noise sigma")
    parser.add_argument("--proposers", default="local,random",
                        help="comma-separated, from local and random (one arm alone halves the time)")
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument("--seconds", type=int, help="training seconds per experiment (time budget)")
    limit.add_argument("--steps", type=int, help="optimizer steps per experiment (steps budget)")
    parser.add_argument("--base-seeds", default="42", help="comma-separated base seeds, one run per proposer each")
    args, extra = parser.parse_known_args()
    proposers = [name for name in args.proposers.split(",") if name]
    if not proposers or set(proposers) - {"local", "random"}:
        parser.error(f"--proposers takes local and/or random, comma-separated; got {args.proposers!r}")
    try:
        seeds = [int(seed) for seed in args.base_seeds.split(",") if seed]
    except ValueError:
        parser.error(f"--base-seeds takes comma-separated integers; got {args.base_seeds!r}")
    if not seeds or any(arg.startswith("hparams.seed=") for arg in extra):
        parser.error("give the base seeds with --base-seeds, not hparams.seed=")
    budget = (["budget.kind=time", f"budget.seconds={args.seconds}"] if args.seconds
              else ["budget.kind=steps", f"budget.steps={args.steps}"])
    runs_dir = Path(tempfile.mkdtemp(prefix="bench-proposers-"))
    print(f"load average (1 / 5 / 15 min) at the start: {load()}\n")
    print(f"| base seed | proposer | baseline val_bpb (mean of {args.baselines}) | best val_bpb | gain | keeps | "
          "crashes | skips | minutes |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    gains: dict[str, list[float]] = {proposer: [] for proposer in proposers}
    for seed in seeds:
        for proposer in proposers:
            rows, wall = run(proposer, seed, args.proposals, args.baselines, budget, runs_dir, extra)
            baseline_values = [r["val_bpb"] for r in rows if r["status"] == "baseline"]
            baseline = sum(baseline_values) / len(baseline_values)
            best = rows[-1]["best_val_bpb"]
            count = lambda status: sum(r["status"] == status for r in rows)  # noqa: E731
            gain = round(baseline - best, 4) + 0.0  # + 0.0: no "-0.0000" when nothing was kept
            gains[proposer].append(gain)
            print(f"| {seed} | {proposer} | {baseline:.4f} | {best:.4f} | {gain:.4f} | {count('keep')} | "
                  f"{count('crash')} | {count('skip')} | {wall / 60:.1f} |", flush=True)
    print(f"\nload average at the end: {load()}")
    means = {proposer: sum(values) / len(values) for proposer, values in gains.items()}
    for proposer, mean in means.items():
        print(f"{proposer}: mean gain {mean:.4f} over {len(gains[proposer])} base seed(s)")
    if len(means) == 2 and means["random"] > 0:
        print(f"local / random mean gain: {means['local'] / means['random']:.2f}x")
    print(f"runs kept in {runs_dir}")


if __name__ == "__main__":
    main()
