"""What the CPU research benchmarks share: running `autoresearch run` on the cpu preset, the budget flags, and
reading a finished run's gain and best config from its ledger."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research.judging.verdict import baseline_best  # noqa: E402
from research.records.layout import RunLayout  # noqa: E402
from research.records.ledger import Ledger  # noqa: E402


def run_flow(tag: str, runs_dir: Path, overrides: list[str]) -> tuple[list[dict], float]:
    """One `autoresearch run` on the cpu preset, quietly; its ledger rows and wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli.main", "run", "preset=cpu", f"tag={tag}",
                    f"paths.runs_dir={runs_dir}", *overrides], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return Ledger(RunLayout.of(runs_dir, tag).results).rows(), time.perf_counter() - started


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--flops", type=float, help="FLOPs per experiment (default: the cpu preset's FLOP budget, "
                                                   "which the machine's load cannot change)")
    limit.add_argument("--seconds", type=int, help="training seconds per experiment (time budget: needs a quiet machine)")
    limit.add_argument("--steps", type=int, help="optimizer steps per experiment (steps budget)")


def budget_overrides(args: argparse.Namespace) -> list[str]:
    """The budget overrides; none for the cpu preset's own FLOP budget."""
    if args.seconds:
        return ["budget.kind=time", f"budget.seconds={args.seconds}"]
    if args.steps:
        return ["budget.kind=steps", f"budget.steps={args.steps}"]
    if args.flops:
        return ["budget.kind=flops", f"budget.flops={args.flops:g}"]
    return []


def cpu_arithmetic() -> str:
    """The dtype the cpu preset trains in on this machine: bf16 where the CPU has it natively, fp32 elsewhere
    (hardware/cpu.py). It changes val_bpb, so runs trained in different dtypes are no pair."""
    from hardware import get_adapter

    return str(get_adapter("cpu").autocast_dtype).removeprefix("torch.")


def load() -> str:
    """The load average: a time budget's step count moves with it, so every timed benchmark prints it."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def baseline_mean(rows: list[dict]) -> float:
    mean = baseline_best([row["val_bpb"] for row in rows if row["status"] == "baseline"])
    if mean is None:
        raise ValueError("the run has no finished baseline")
    return mean


def keep_time_gain(rows: list[dict]) -> float:
    """The run's own figure: its baselines' mean minus its best kept val_bpb (0 when nothing was kept).

    A kept run is the winner of a noisy comparison, so this figure carries the luck that let it through.
    """
    return round(baseline_mean(rows) - rows[-1]["best_val_bpb"], 4) + 0.0  # + 0.0: no "-0.0" when nothing was kept


def kept_overrides(rows: list[dict]) -> tuple[str, ...]:
    """The run's best config as Hydra overrides of the block it started from: every kept change, in order,
    a later keep of a key replacing the earlier one. Empty when nothing was kept."""
    kept: dict[str, str] = {}
    for row in rows:
        if row["status"] == "keep":
            key, value = str(row["change"]).split("=", 1)
            kept[key] = value
    return tuple(f"hparams.{key}={value}" for key, value in sorted(kept.items()))


def proposer_of(rows: list[dict]) -> str:
    names = {row["proposer"] for row in rows if row["status"] != "baseline" and row.get("proposer")}
    if len(names) != 1:
        raise ValueError(f"expected the rows of one proposer, found {sorted(names) or 'none'}")
    return names.pop()


RECORD_RUNS = ROOT / "runs"  # where a recorded benchmark trains: kept between sittings, so a stopped run resumes


class Record:
    """A benchmark that spans sittings: DIR/<tag>.tsv per finished run (the data: commit it), and
    DIR/settings.json, what every run in DIR was started with. Its runs train under runs/, so a stopped one
    resumes there."""

    def __init__(self, folder: Path, settings: dict):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        pinned = folder / "settings.json"
        if pinned.is_file():
            recorded = json.loads(pinned.read_text())
            if recorded != settings:
                raise SystemExit(f"{folder} holds runs started with {recorded}, not {settings}: give another "
                                 f"--record folder, or the same settings.")
        else:
            pinned.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")

    @property
    def runs_dir(self) -> Path:
        return RECORD_RUNS / f"bench-proposers-{self.folder.resolve().name}"  # one per record: no clash of tags

    def ledger(self, tag: str) -> Path:
        return self.folder / f"{tag}.tsv"

    def rows(self, tag: str) -> list[dict] | None:
        return Ledger(self.ledger(tag)).rows() if self.ledger(tag).is_file() else None

    def flow(self, tag: str, overrides: list[str]) -> tuple[list[dict], float | None]:
        """The recorded run's rows (wall seconds None: nothing trained now), or run_flow's, then recorded."""
        rows = self.rows(tag)
        if rows is not None:
            return rows, None
        rows, wall = run_flow(tag, self.runs_dir, overrides)
        self.keep(tag)
        return rows, wall

    def keep(self, tag: str) -> None:
        """Copy a finished run's ledger in, whole or not at all (a stop mid-copy leaves no half record)."""
        partial = self.ledger(tag).with_suffix(".tsv.partial")
        shutil.copyfile(RunLayout.of(self.runs_dir, tag).results, partial)
        os.replace(partial, self.ledger(tag))
