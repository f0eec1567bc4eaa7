"""Local proposer against random on real CPU-preset training: val_bpb gained after N proposals.

    python bench/proposer_cpu.py [--proposals 16] [--baselines 2] [--proposers local,random]
                                 (--seconds S | --steps N) [extra overrides...]

Runs `autoresearch run` on the bundled dataset with the cpu preset, once per proposer (both by default),
each with the same BASELINES baselines (one seed each) and PROPOSALS experiments, then prints the gain of each
run: the mean of its baselines minus its best kept val_bpb. A time budget is the product's objective (a bigger
model must pay for its compute) but needs a quiet machine: under load the steps done in S seconds swing. A
steps budget is immune to load but gives compute away, so it rewards the biggest model a proposer dares to
try. One run per proposer is a single honest sample, not a distribution; `hparams.seed=7` (an extra override)
draws another one (other baseline seeds, other proposals).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.ledger import Ledger  # noqa: E402


def run(proposer: str, proposals: int, baselines: int, budget: list[str], runs_dir: Path,
        extra: list[str]) -> tuple[list[dict], float]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.cli", "run", "preset=cpu", f"proposer={proposer}",
                    f"tag=bench-{proposer}", f"paths.runs_dir={runs_dir}", *budget,
                    f"research.max_experiments={baselines + proposals}", f"decide.baseline_repeats={baselines}",
                    *extra], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return Ledger(runs_dir / f"bench-{proposer}" / "results.tsv").rows(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=16)
    parser.add_argument("--baselines", type=int, default=2, help="baseline repeats: their spread is the noise sigma")
    parser.add_argument("--proposers", default="local,random",
                        help="comma-separated, from local and random (one arm alone halves the time)")
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument("--seconds", type=int, help="training seconds per experiment (time budget)")
    limit.add_argument("--steps", type=int, help="optimizer steps per experiment (steps budget)")
    args, extra = parser.parse_known_args()
    proposers = [name for name in args.proposers.split(",") if name]
    if not proposers or set(proposers) - {"local", "random"}:
        parser.error(f"--proposers takes local and/or random, comma-separated; got {args.proposers!r}")
    budget = (["budget.kind=time", f"budget.seconds={args.seconds}"] if args.seconds
              else ["budget.kind=steps", f"budget.steps={args.steps}"])
    runs_dir = Path(tempfile.mkdtemp(prefix="bench-proposers-"))
    print(f"| proposer | baseline val_bpb (mean of {args.baselines}) | best val_bpb | gain | keeps | crashes | skips "
          "| minutes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for proposer in proposers:
        rows, wall = run(proposer, args.proposals, args.baselines, budget, runs_dir, extra)
        baseline_values = [r["val_bpb"] for r in rows if r["status"] == "baseline"]
        baseline = sum(baseline_values) / len(baseline_values)
        best = rows[-1]["best_val_bpb"]
        count = lambda status: sum(r["status"] == status for r in rows)  # noqa: E731
        gain = round(baseline - best, 4) + 0.0  # + 0.0: no "-0.0000" when nothing was kept
        print(f"| {proposer} | {baseline:.4f} | {best:.4f} | {gain:.4f} | {count('keep')} | "
              f"{count('crash')} | {count('skip')} | {wall / 60:.1f} |")
    print(f"\nruns kept in {runs_dir}")


if __name__ == "__main__":
    main()
