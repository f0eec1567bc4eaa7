"""The keep rule under simulated training noise: today's rule (`single`) against the paired sequential one.

Noise model: a run of config c on seed s scores
    val_bpb = mu_c + offset_s + interaction_(c,s) + run noise
offset_s is what a seed does to every config alike (data order, init), the interaction what it does to one
config only, the run noise what the same config on the same seed does differently twice (kernels, a time
budget's step count). The seed-to-seed sd of one config is sqrt(offset^2 + interaction^2 + run^2); a pair on
one seed cancels the offset, leaving sqrt(2 (interaction^2 + run^2)).

Regimes (sd of offset / interaction / run noise, val_bpb):
- gpu-session: one H200, one session; the same config scattered by sd ~0.0001.
- gpu-sessions: across sessions and seeds, seed-to-seed sd 0.00076 (nine published runs of the seed's own
  system on one RTX 5090). How it splits into the three parts is not measured; most of it is taken as the
  seed's offset, as on the CPU.
- cpu: this repository's cpu preset, 30 s budget: baseline sd 0.006-0.021 across four seeds (BENCHMARKS.md,
  ~0.013 typical), the same seed re-run moved by ~0.004 (2.0480 vs 2.0523, 43 vs 42 steps), paired gains of
  small changes over six fresh seeds had sd 0.002-0.006 (bench/remeasure.py's s.e. x sqrt(6)).

Proposal classes: `null` (every proposal does nothing), `2x` (every proposal gains 2 seed-to-seed sds over the
incumbent), `mix` (half worse by one sd, 40% null, 10% better by two sds: most proposals do not help).
Trainings per proposal count every training after the baselines, the incumbent's extra seeds included.

    .venv/bin/python bench/decide_sim.py [--runs 400] [--proposals 16]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research.decide import CONTINUE, decision_fields, first_seed, judge_baseline, judge_candidate  # noqa: E402

BASE_SEED = 42


@dataclass(frozen=True)
class NoiseModel:
    offset_sd: float
    interaction_sd: float
    run_sd: float

    @property
    def seed_sd(self) -> float:
        return math.sqrt(self.offset_sd ** 2 + self.interaction_sd ** 2 + self.run_sd ** 2)


REGIMES = {
    "gpu-session": NoiseModel(0.00008, 0.00004, 0.00004),
    "gpu-sessions": NoiseModel(0.0006, 0.0003, 0.00035),
    "cpu": NoiseModel(0.012, 0.004, 0.004),
}
CLASSES = {"null": ((1.0, 0.0),), "2x": ((1.0, 2.0),), "mix": ((0.5, -1.0), (0.4, 0.0), (0.1, 2.0))}


class World:
    """One simulated run's hidden truth: each config's mean, each seed's offset, each (config, seed) interaction."""

    def __init__(self, model: NoiseModel, rng: random.Random):
        self.model, self.rng = model, rng
        self.means: dict[int, float] = {0: 1.0}
        self.offsets: dict[int, float] = {}
        self.interactions: dict[tuple[int, int], float] = {}

    def measure(self, config: int, seed: int) -> float:
        m, rng = self.model, self.rng
        offset = self.offsets.setdefault(seed, rng.gauss(0, m.offset_sd))
        interaction = self.interactions.setdefault((config, seed), rng.gauss(0, m.interaction_sd))
        return self.means[config] + offset + interaction + rng.gauss(0, m.run_sd)


def draw_gain(mix, rng: random.Random) -> float:
    """A proposal's true gain, in seed-to-seed sds (negative = worse)."""
    pick, total = rng.random(), 0.0
    for share, gain in mix:
        total += share
        if pick < total:
            return gain
    return mix[-1][1]


def judge_in_world(world: "World", rows: list[dict], settings: dict, exp: int, best_config: int, seed: int):
    """research.decide's verdict on config `exp` against the incumbent `best_config`, every pair it asks for
    measured in the simulated world as flows/settle.py trains them. Returns (decision, the candidate's runs, the
    incumbent's new runs, trainings spent)."""
    candidate, incumbent_new, trainings = {seed: world.measure(exp, seed)}, {}, 1
    while True:
        decision = judge_candidate(rows, settings, candidate, incumbent_new, BASE_SEED)
        if decision.status != CONTINUE:
            return decision, candidate, incumbent_new, trainings
        if decision.incumbent_runs_next:
            incumbent_new[decision.next_seed] = world.measure(best_config, decision.next_seed)
            trainings += 1
        if decision.next_seed not in candidate:
            candidate[decision.next_seed] = world.measure(exp, decision.next_seed)
            trainings += 1


def simulate_run(settings: dict, model: NoiseModel, mix, proposals: int, rng: random.Random) -> dict:
    """One run: baselines, then `proposals` proposals judged by research.decide exactly as the flow does."""
    world, rows = World(model, rng), []
    for b in range(int(settings["baseline_repeats"])):
        seed = BASE_SEED + b
        value = world.measure(0, seed)
        rows.append({"exp": b, "seed": seed, **decision_fields(judge_baseline(rows, seed, value), {seed: value}, {})})
    best_config, trainings, keeps = 0, 0, {"useful": 0, "useless": 0}
    for exp in range(len(rows), len(rows) + proposals):
        gain = draw_gain(mix, rng)
        world.means[exp] = world.means[best_config] - gain * model.seed_sd
        seed = first_seed(rows, BASE_SEED)
        decision, candidate, incumbent_new, spent = judge_in_world(world, rows, settings, exp, best_config, seed)
        trainings += spent
        rows.append({"exp": exp, "seed": seed, **decision_fields(decision, candidate, incumbent_new)})
        if decision.keep:
            keeps["useful" if gain > 0 else "useless"] += 1
            best_config = exp
    return {"trainings": trainings, **keeps, "true_gain": world.means[0] - world.means[best_config]}


def rates(settings: dict, model: NoiseModel, mix, runs: int, proposals: int, seed: int) -> dict:
    """Keep rate and trainings per proposal over `runs` simulated runs."""
    rng = random.Random(seed)
    totals = {"trainings": 0, "useful": 0, "useless": 0, "true_gain": 0.0}
    for _ in range(runs):
        for key, value in simulate_run(settings, model, mix, proposals, rng).items():
            totals[key] += value
    n = runs * proposals
    return {"kept": (totals["useful"] + totals["useless"]) / n, "trainings": totals["trainings"] / n,
            "true_gain": totals["true_gain"] / runs / model.seed_sd}


def rule_settings(rule: str) -> dict:
    """conf/config.yaml's decide block, with decide.rule set."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "config.yaml").read_text())
    return {**config["decide"], "rule": rule}


def table(runs: int, proposals: int, seed: int = 0) -> list[str]:
    lines = ["| regime | rule | null kept (goal <= 5%) | 2x sd kept (goal >= 80%) | trainings / proposal: null, 2x, "
             "mix (goal <= 1.6) | true gain after the run, mix (seed sds) |", "|---|---|---:|---:|---:|---:|"]
    for name, model in REGIMES.items():
        for rule in ("single", "sequential"):
            settings = rule_settings(rule)
            got = {cls: rates(settings, model, mix, runs, proposals, seed) for cls, mix in CLASSES.items()}
            lines.append(f"| {name} | {rule} | {got['null']['kept']:.1%} | {got['2x']['kept']:.1%} | "
                         f"{got['null']['trainings']:.2f}, {got['2x']['trainings']:.2f}, {got['mix']['trainings']:.2f} | "
                         f"{got['mix']['true_gain']:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="simulated runs per cell")
    parser.add_argument("--proposals", type=int, default=16, help="proposals per run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("\n".join(table(args.runs, args.proposals, args.seed)))


if __name__ == "__main__":
    main()
