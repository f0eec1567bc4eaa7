"""Real cpu-preset trainings of one-change and two-change blocks around the default: the data a surrogate of this
task's landscape is fitted from (issue 25), appended to a CSV row by row.

    python bench/landscape.py [--out bench/results/landscape.csv] [--seeds 2] [--default-seeds 4]
                              [--two-change 0] [--minutes M] [--limit N] [--threads T] [--dry-run]

The plan, in the order it is trained (so a partial collection is spread over every key, not deep in a few):
  1. the default block on DEFAULT_SEEDS seeds (1000, 1001, ...): the zero every gain is measured from, and the
     seed spread;
  2. one-change blocks, round-robin over conf/space.yaml's keys: a log-scale number at 1/4, 1/2, 2 and 4 times
     its default, a linear one at four points across its range, an int of 10 or less also at its
     neighbours, every other choice, the other bool, four window patterns;
  3. TWO_CHANGE two-change blocks: seeded random pairs of the one-change blocks on different keys (their
     interaction is what an additive surrogate misses).
Each block trains on SEEDS seeds (1000, 1001, ...), so a change's gain is paired with the default's on the same
seed. A block the space's constraints reject for the cpu preset is left out: no proposer would train it.

The budget is the cpu preset's own: a FLOP budget (conf/preset/cpu.yaml), which the machine's load cannot change;
a bigger block gets fewer steps, as it would under a time budget on an idle machine. The dataset is prepared as
`autoresearch run` prepares it, and trainings run as the product runs them (training.launch starts `python -m
training.entry`, then `python -m training.evaluate`), without Prefect. A training that fails is a row too (status
crash, with its reason): proposers must learn where the crashes are.

Crash-safe and resumable: a row is appended and flushed when its training ends, and a (block, seed) already in the
file is not trained again, so the command can be stopped at any moment and run again (also on another day: every
row says its commit, CPU and load average).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.surrogate import DEFAULT_BLOCK, with_changes  # noqa: E402
from data.prepare import prepare_data  # noqa: E402
from flows.compose import compose, resolve_path  # noqa: E402
from research.proposing.space import Param, Space, format_value, get_value, load_space  # noqa: E402
from research.proposing.validation import InvalidProposal, check_constraints  # noqa: E402

FIRST_SEED = 1000
FIELDS = ["block", "changes", "seed", "status", "val_bpb", "steps", "training_seconds", "reason", "load1", "cpu",
          "commit", "budget"]
WINDOW_PATTERNS = ("L", "SL", "SSL", "SLSL")


def grid(param: Param, default) -> list:
    """The values a one-change block tries for one key, the default itself left out."""
    if param.type == "bool":
        values = [not default]
    elif param.type == "choice":
        values = list(param.choices)
    elif param.type == "str-pattern":
        values = list(WINDOW_PATTERNS)
    elif param.log and default > 0:
        values = [default * factor for factor in (0.25, 0.5, 2.0, 4.0)]
    else:
        span = param.max - param.min
        values = [param.min + span * q for q in (0.1, 0.35, 0.65, 0.9)]
        if param.type == "int" and default <= 10:  # a step of 10% or more; aspect_ratio 33 for 32 is next to nothing
            values = [default - 1, default + 1, *values]
    if param.type == "int":
        values = [int(round(value)) for value in values]
    elif param.type == "float":
        values = [float(format_value(param, value)) for value in values]
    kept = []
    for value in values:
        inside = param.type not in ("int", "float") or param.min <= value <= param.max
        if inside and value != default and value not in kept:
            kept.append(value)
    return kept


def block_name(space: Space, changes: list[tuple[str, object]]) -> str:
    return ";".join(f"{key}={format_value(space[key], value)}" for key, value in changes) or DEFAULT_BLOCK


def plan(space: Space, hparams: dict, seq_len: int, two_change: int) -> list[list[tuple[str, object]]]:
    """Blocks as lists of (key, value), in training order; the ones the space's constraints reject left out."""
    def valid(changes):
        try:
            check_constraints(space, with_changes(hparams, changes), seq_len)
        except InvalidProposal:
            return False
        return True

    per_key = [[[(key, value)] for value in grid(space[key], get_value(hparams, key))] for key in space.keys]
    singles = []
    for depth in range(max(len(values) for values in per_key)):
        singles += [values[depth] for values in per_key if depth < len(values) and valid(values[depth])]
    pairs, seen = [], set()
    rng = random.Random(0)
    while len(pairs) < two_change and len(seen) < len(singles) ** 2:
        a, b = sorted(rng.sample(range(len(singles)), 2))
        seen.add((a, b))
        changes = singles[a] + singles[b]
        if changes[0][0] != changes[1][0] and valid(changes) and changes not in pairs:
            pairs.append(changes)
    return [[]] + singles + pairs


def done_rows(path: Path) -> set[tuple[str, int]]:
    if not path.is_file():
        return set()
    with path.open(newline="") as handle:
        return {(row["block"], int(row["seed"])) for row in csv.DictReader(handle)}


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


def train(cfg: dict, data: dict, block: dict, seed: int, threads: int) -> dict:
    """One training and evaluation as the product runs them; the outcome as CSV fields. The folder (a 20 MB
    checkpoint) is removed after."""
    exp_dir = Path(tempfile.mkdtemp(prefix="landscape-"))
    try:
        return _train_in(exp_dir, cfg, data, block, seed, threads)
    finally:
        shutil.rmtree(exp_dir, ignore_errors=True)


def _train_in(exp_dir: Path, cfg: dict, data: dict, block: dict, seed: int, threads: int) -> dict:
    """Through the product's launcher (training.launch: the training's environment without secrets, its deadline
    and silence watchdog) and its finished-outcome reader, as a research run trains."""
    from experiment.lifecycle import training_limits
    from training.launch import finished_metrics, run_isolated
    from training.run_config import ExperimentDir, training_config, write_training_config

    write_training_config(exp_dir, training_config(cfg, block, seed, data))
    paths, env = ExperimentDir(exp_dir), {"OMP_NUM_THREADS": str(threads)}
    deadline, silence = training_limits(cfg["budget"])
    trained = run_isolated("training.entry", exp_dir, exp_dir / "train.log", deadline, env=env,
                           silence_seconds=silence)
    metrics = finished_metrics(paths.metrics) or {}
    if metrics.get("status") != "ok":
        return {"status": "crash", "reason": (metrics.get("reason") or trained.describe_failure())[:200],
                "steps": metrics.get("steps", "")}
    run_isolated("training.evaluate", exp_dir, exp_dir / "eval.log", None, env=env,
                 silence_seconds=float(cfg["budget"]["grace_seconds"]) * 2)
    evaluation = finished_metrics(paths.evaluation) or {}
    val_bpb = evaluation.get("val_bpb") if evaluation.get("status") == "ok" else None
    if val_bpb is None or not math.isfinite(val_bpb):
        return {"status": "crash", "reason": f"evaluation: {evaluation.get('reason', 'no val_bpb')}"[:200],
                "steps": metrics["steps"]}
    return {"status": "ok", "val_bpb": f"{val_bpb:.6f}", "steps": metrics["steps"],
            "training_seconds": f"{metrics['training_seconds']:.1f}", "reason": ""}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "landscape.csv")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per changed block (1000, 1001, ...)")
    parser.add_argument("--default-seeds", type=int, default=4, help="seeds of the default block")
    parser.add_argument("--two-change", type=int, default=0, help="two-change blocks after the one-change ones")
    parser.add_argument("--minutes", type=float, default=None, help="start no training after this many minutes")
    parser.add_argument("--limit", type=int, default=None, help="train at most this many this time")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is left of it")
    args = parser.parse_args(argv)

    cfg = compose(["preset=cpu"], auto=False)
    space = load_space(ROOT / "conf" / "space.yaml")
    blocks = plan(space, cfg["hparams"], int(cfg["train"]["seq_len"]), args.two_change)
    done = done_rows(args.out)
    todo = [(changes, seed) for changes in blocks
            for seed in range(FIRST_SEED, FIRST_SEED + (args.seeds if changes else args.default_seeds))
            if (block_name(space, changes), seed) not in done]
    print(f"landscape: {len(blocks)} blocks ({sum(len(c) == 1 for c in blocks)} one-change, "
          f"{sum(len(c) == 2 for c in blocks)} two-change), {len(done)} trainings in {args.out}, {len(todo)} to go")
    if args.dry_run:
        for changes, seed in todo:
            print(f"  {block_name(space, changes)} seed {seed}")
        return

    # As `autoresearch run` prepares it: built by DVC if missing, verified, the run's `data` section.
    data = prepare_data(cfg["dataset"]["name"], resolve_path(cfg["paths"]["data_dir"]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    from hardware import get_adapter

    cpu = get_adapter("cpu").device_name()
    budget = cfg["budget"]
    budget_text = f"{budget['kind']} {budget.get(budget['kind'], '')}"
    started = time.monotonic()
    for count, (changes, seed) in enumerate(todo[:args.limit]):
        if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
            print(f"landscape: stopped after {args.minutes:g} minutes, {count} trainings")
            break
        name = block_name(space, changes)
        outcome = train(cfg, data, with_changes(cfg["hparams"], changes), seed, args.threads)
        row = {"block": name, "changes": json.dumps(changes), "seed": seed, "load1": f"{os.getloadavg()[0]:.2f}",
               "cpu": cpu, "commit": commit, "budget": budget_text, "val_bpb": "", "training_seconds": "",
               **outcome}
        append_row(args.out, row)
        print(f"  {name} seed {seed}: {outcome['status']} {outcome.get('val_bpb') or outcome['reason']} "
              f"({outcome.get('steps', '')} steps)", flush=True)


if __name__ == "__main__":
    main()
