"""Real-shaped ledgers for the progress plot's tests, every verdict given by research/judging/verdict.py itself.

A scripted world stands in for training: each config has a mean val_bpb and each seed shifts every config alike
(as seeds do), so a proposal can be written down as the val_bpb its first run scored. bench/decide_sim.py's
judge_in_world then asks for every pair the rule wants, as the flow does.
"""
from __future__ import annotations

import random
from pathlib import Path

from bench.decide_sim import BASE_SEED, World, judge_in_world
from bench.synthetic_ledger import synthetic_ledger
from research.judging.verdict import Trained, decision_fields, first_seed, judge_baseline, judge_failure
from research.records.ledger import Ledger
from research.records.run_settings import decide_settings

DEFAULTS = decide_settings("/nonexistent/settings.json")  # conf/config.yaml's decide block
CRASH, SKIP = "crash", "skip"
TRAIN_SECONDS = 30.0  # the cpu preset's budget: what the hours panel counts
# Changes as the proposers write them, the longest first: an early keep's label is the widest.
CHANGES = ("batch.total_batch_tokens=1048576", "optim.matrix_lr=0.05", "model.window_pattern=SSSL",
           "optim.warmdown_frac=0.3", "model.depth=10", "optim.embedding_lr=0.4")


class ScriptedWorld:
    """val_bpb of config c on seed s = means[c] + offsets[s] (0 for a seed not listed), plus, on every run not
    scripted, a fixed draw of sd `jitter_sd` for that (config, seed): what a seed does to one config only, so the
    rule's extra pairs disagree as real ones do."""

    def __init__(self, offsets: dict[int, float], jitter_sd: float):
        self.offsets, self.jitter_sd = offsets, jitter_sd
        self.means: dict[int, float] = {}
        self.scripted: set[tuple[int, int]] = set()

    def measure(self, config: int, seed: int) -> tuple[float, None]:
        jitter = 0.0 if (config, seed) in self.scripted else random.Random(f"{config}/{seed}").gauss(0, self.jitter_sd)
        return self.means[config] + self.offsets.get(seed, 0.0) + jitter, None  # no machine speed measured

    def crashes(self) -> bool:
        return False

    train = World.train  # bench/decide_sim.py's `train` callable for research.judging.paired_runs, over this world


def scripted_ledger(baselines: list[float], proposals: list, jitter_sd: float = 0.0) -> list[dict]:
    """Rows of a run whose baselines scored `baselines` (seeds 42, 43, ...) and whose proposals' first runs scored
    `proposals` in order (CRASH or SKIP for an experiment that measured nothing), judged with the default rule."""
    mean = sum(baselines) / len(baselines)
    world = ScriptedWorld({BASE_SEED + b: value - mean for b, value in enumerate(baselines)}, jitter_sd)
    world.means[0] = mean
    world.scripted.update((0, BASE_SEED + b) for b in range(len(baselines)))
    rows: list[dict] = []
    for seed, value in enumerate(baselines, BASE_SEED):
        decision = judge_baseline(rows, seed, value)
        rows.append({"exp": len(rows), "seed": seed, "description": f"baseline (seed {seed})",
                     "train_seconds": TRAIN_SECONDS,
                     **decision_fields(decision, Trained({seed: value}))})
    best_config = 0
    for number, first_run in enumerate(proposals):
        exp, change = len(rows), CHANGES[number % len(CHANGES)]
        if first_run in (CRASH, SKIP):
            seconds = TRAIN_SECONDS if first_run == CRASH else None
            rows.append({"exp": exp, "change": change, "train_seconds": seconds,
                         **decision_fields(judge_failure(rows, first_run, first_run), Trained({}))})
            continue
        seed = first_seed(rows, BASE_SEED)
        world.means[exp] = first_run - world.offsets.get(seed, 0.0)
        world.scripted.add((exp, seed))
        decision, trained, _ = judge_in_world(world, rows, DEFAULTS, exp, best_config, seed)
        rows.append({"exp": exp, "seed": seed, "change": change, "description": f"try {change}",
                     "train_seconds": TRAIN_SECONDS,
                     **decision_fields(decision, trained)})
        if decision.keep:
            best_config = exp
    return rows


def fresh_clone_run() -> list[dict]:
    """The fresh clone's `make run` on 2 CPU cores: two baselines far apart, four proposals all worse."""
    return scripted_ledger([1.90, 2.03], [2.15, 2.30, 2.50, 2.80])


def nothing_kept_run() -> list[dict]:
    """Small proposals, none kept: one better than the best but inside the noise after five pairs, one diverged."""
    return scripted_ledger([2.050, 2.066], [2.070, 2.061, 2.078, 2.060, 7.95, 2.068, 2.063, 2.085], jitter_sd=0.005)


def crashes_and_keeps_run() -> list[dict]:
    """Keeps that walk the best down, the first at once (its label has no room on its left), crashes among them,
    one run diverged to 11 bits per byte (measured, so a discard), a skip, and a tail of discards."""
    return scripted_ledger([1.000, 1.004], [0.990, CRASH, 1.010, 0.975, SKIP, 11.0, CRASH, 0.962, 0.985, 0.950]
                           + [0.958, 0.961, 0.949, 0.966, 0.955, 0.970, 0.952, 0.957, 0.963, 0.951], jitter_sd=0.002)


def hundred_row_run() -> list[dict]:
    return synthetic_ledger(100)


RECORDED = Path(__file__).resolve().parent / "ledgers"


def recorded_cpu_run() -> list[dict]:
    """A real ledger: `autoresearch run` on the defaults (cpu preset, FLOP budget, local proposer), 2026-12-05,
    copied from runs/<tag>/results.tsv as the product wrote it."""
    return Ledger(RECORDED / "cpu_defaults_first_run.tsv").rows()


LEDGERS = {"fresh clone": fresh_clone_run, "nothing kept": nothing_kept_run,
           "crashes and keeps": crashes_and_keeps_run, "100 rows": hundred_row_run,
           "recorded cpu run": recorded_cpu_run}
