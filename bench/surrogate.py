"""A surrogate of the cpu preset's val_bpb landscape, fitted from real trainings (bench/landscape.py's CSV).

What is fitted, and the assumptions it rests on (each one a limit of what a replay on it can say):
- the default block's val_bpb: the mean of its seeds; the seed spread: their standard deviation;
- one key's effect: its one-change blocks' gains, each the mean over seeds of (block - default on the same seed),
  joined by straight lines on the key's own scale (log for log keys) through the default (gain 0), flat beyond
  the outermost value trained; a value nearer to a crashed training than to a finished one crashes;
  a category nobody trained (a window pattern) has the mean effect of the trained ones;
- a block of several changes: the sum of their effects (additive), plus an interaction per pair of changed keys
  drawn once per landscape from N(0, interaction_sd), where interaction_sd is what the two-change blocks measured
  beyond the sum and beyond the run noise (0 until two-change blocks are trained);
- a training: the block's value + the seed's offset (N(0, seed_sd), fixed per landscape and seed) + run noise
  N(0, run_sd), run_sd from how much a one-change block's gain differs between its seeds.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from research.proposing.space import Param, Space, format_value, get_value

DEFAULT_BLOCK = "default"


def with_changes(hparams: dict, changes: list) -> dict:
    """A copy of the nested block with each (dotted key, value) set."""
    block = json.loads(json.dumps(hparams))
    for key, value in changes:
        *parents, last = key.split(".")
        node = block
        for part in parents:
            node = node[part]
        node[last] = value
    return block


def scale(param: Param, value) -> float:
    """Where a number sits on its key's own axis."""
    return math.log(float(value)) if param.log and float(value) > 0 else float(value)


@dataclass
class KeyEffect:
    param: Param
    default: object
    numbers: list[tuple[float, float | None]] = field(default_factory=list)  # (axis position, gain or None: crash)
    categories: dict[str, float | None] = field(default_factory=dict)        # canonical value -> gain or None

    def add(self, value, gain: float | None) -> None:
        if self.param.type in ("int", "float"):
            self.numbers.append((scale(self.param, value), gain))
        else:
            self.categories[format_value(self.param, value)] = gain

    def gain(self, value) -> float | None:
        """The change's effect on val_bpb (positive: worse), or None where it crashes."""
        if self.param.type not in ("int", "float"):
            text = format_value(self.param, value)
            if text == format_value(self.param, self.default):
                return 0.0
            if text in self.categories:
                return self.categories[text]
            known = [g for g in self.categories.values() if g is not None]
            return statistics.fmean(known) if known else 0.0
        x = scale(self.param, value)
        points = sorted(self.numbers + [(scale(self.param, self.default), 0.0)])
        nearest = min(points, key=lambda point: abs(point[0] - x))
        if nearest[1] is None:
            return None
        finished = [(px, g) for px, g in points if g is not None]
        xs = [px for px, _ in finished]
        return float(np.interp(x, xs, [g for _, g in finished]))


@dataclass
class Landscape:
    default_val_bpb: float
    effects: dict[str, KeyEffect]
    seed_sd: float
    run_sd: float
    interaction_sd: float
    trainings: int
    seconds_per_training: float | None = None  # the trainings' mean training_seconds: what a replay's trainings cost

    def true_val_bpb(self, hparams: dict, defaults: dict, salt: int = 0) -> float | None:
        """The noise-free val_bpb of a block, or None where it crashes. `salt` picks the pairwise interactions."""
        changed = [key for key in self.effects if get_value(hparams, key) != get_value(defaults, key)]
        total = self.default_val_bpb
        for key in changed:
            gain = self.effects[key].gain(get_value(hparams, key))
            if gain is None:
                return None
            total += gain
        for i, a in enumerate(changed):
            for b in changed[i + 1:]:
                total += self.interaction_sd * _unit_normal(salt, a, get_value(hparams, a), b, get_value(hparams, b))
        return total

    def measure(self, hparams: dict, defaults: dict, seed: int, rng: np.random.Generator, salt: int = 0) -> float | None:
        value = self.true_val_bpb(hparams, defaults, salt)
        if value is None:
            return None
        return value + self.seed_sd * _unit_normal(salt, "seed", seed) + float(rng.normal(0, self.run_sd))


def _unit_normal(*parts) -> float:
    """A standard normal draw fixed by `parts` (the same block, pair or seed always gets the same one)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return float(np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal())


def read_rows(path: Path) -> list[dict]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def fit(rows: list[dict], space: Space, defaults: dict) -> Landscape:
    default = {int(r["seed"]): float(r["val_bpb"]) for r in rows if r["block"] == DEFAULT_BLOCK and r["status"] == "ok"}
    if len(default) < 2:
        raise ValueError("the landscape needs the default block on at least 2 seeds (bench/landscape.py trains them first)")
    blocks: dict[str, list[dict]] = {}
    for row in rows:
        if row["block"] != DEFAULT_BLOCK:
            blocks.setdefault(row["block"], []).append(row)
    effects = {key: KeyEffect(space[key], get_value(defaults, key)) for key in space.keys}
    seed_pairs, residuals = [], []
    for block_rows in blocks.values():
        changes = json.loads(block_rows[0]["changes"])
        diffs = [float(r["val_bpb"]) - default[int(r["seed"])] for r in block_rows
                 if r["status"] == "ok" and int(r["seed"]) in default]
        crashed = all(r["status"] == "crash" for r in block_rows)
        if len(diffs) >= 2:
            seed_pairs.append(diffs[:2])
        if len(changes) == 1:
            (key, value), = changes
            if crashed:
                effects[key].add(value, None)
            elif diffs:
                effects[key].add(value, statistics.fmean(diffs))
        elif len(changes) == 2 and diffs:
            residuals.append((statistics.fmean(diffs), changes, len(diffs)))
    # One block's gains on two seeds differ by four runs' noise (each gain is the block's run minus the default's
    # run on its seed): E[(d1 - d2)^2] = 4 run_sd^2.
    run_sd = math.sqrt(statistics.fmean((a - b) ** 2 for a, b in seed_pairs) / 4) if seed_pairs else 0.0
    seed_sd = statistics.stdev(default.values())
    seconds = [float(r["training_seconds"]) for r in rows if r["status"] == "ok" and r.get("training_seconds")]
    landscape = Landscape(statistics.fmean(default.values()), effects, seed_sd, run_sd, 0.0, len(rows),
                          statistics.fmean(seconds) if seconds else None)
    excess = []
    for mean_diff, changes, n in residuals:
        additive = landscape.true_val_bpb(with_changes(defaults, changes), defaults)
        if additive is not None:
            # what remains beyond the sum, less the noise of a mean of n paired gains (2 run_sd^2 / n)
            excess.append((mean_diff - (additive - landscape.default_val_bpb)) ** 2 - 2 * run_sd ** 2 / n)
    landscape.interaction_sd = math.sqrt(max(0.0, statistics.fmean(excess))) if excess else 0.0
    return landscape


def _axis_value(param: Param, x: float):
    value = math.exp(x) if param.log else x
    return int(round(value)) if param.type == "int" else value


def describe(landscape: Landscape) -> list[str]:
    """The fitted landscape as lines: the noise, then each key's trained values and gains, best first."""
    lines = [f"default val_bpb {landscape.default_val_bpb:.4f}; seed sd {landscape.seed_sd:.4f}, run sd "
             f"{landscape.run_sd:.4f}, interaction sd {landscape.interaction_sd:.4f}; {landscape.trainings} trainings"]
    measured = []
    for key, effect in landscape.effects.items():
        points = [(g, v) for v, g in effect.categories.items()] + [
            (g, format_value(effect.param, _axis_value(effect.param, x))) for x, g in effect.numbers]
        if points:
            best = min((g for g, _ in points if g is not None), default=None)
            measured.append((best if best is not None else math.inf, key, points))
    for best, key, points in sorted(measured, key=lambda item: item[0]):
        shown = ", ".join(f"{v}: {'crash' if g is None else f'{g:+.4f}'}" for g, v in points)
        lines.append(f"  {key}: {shown}")
    return lines

