"""The keep rule under simulated training noise: the product's paired decision loop (research.judging.paired_runs.
settle_pairs, retries included) measuring a simulated world, against today's rules.

Noise model: a run of config c on seed s, as the run's n-th training, scores
    val_bpb = mu_c + session + offset_(c,s) + interaction_(c,s) + slope * ln(speed_n / ref) + drift * n + run noise
offset_(c,s) is what a seed does to every config alike (data order, init): a config inherits its parent's, and a
change of a noisier kind adds its own deviation (its seed draws other numbers); interaction_(c,s) is what a seed
does to one config only; the run noise what the same config on the same seed does differently twice (kernels).
speed_n is the machine's speed during that training (log-normal around ref), reported to the decision as
experiment/paired.py reports the training's `machine_speed`; a time budget gives steps in proportion to it. The
session's offset is the same for every training of one simulated run, so it cancels everywhere.

Regimes (sds in val_bpb):
- gpu-session: one H200, one session; offset / interaction / run 0.00008 / 0.00004 / 0.00004 (sd ~0.0001).
- gpu-sessions: seed-to-seed sd 0.00076 (nine published runs of the seed's own system on one RTX 5090), split
  0.0006 / 0.0003 / 0.00035, most of it taken as the seed's offset, as on the CPU.
- cpu: this repository's cpu preset, 30 s budget: 0.012 / 0.004 / 0.004 (baseline sd ~0.013, the same seed re-run
  moved by ~0.004, paired gains of small changes sd 0.002-0.006).
- h200-speed: the published H200 trials (issue 23): no seed effect at all; the speed varies by sd 0.82% per
  training (log-normal), val_bpb moves by -0.059 per unit ln speed, residual sd 0.00010; sessions differ by up
  to 0.0022 (a per-run offset, uniform). Seed-to-seed sd without the adjustment 0.0005: the 2x class's unit.
  Rows with decide.speed.adjust=true (prior slope -0.059, the published one) and false (today's rule).
- noisy-quarter: cpu, but a quarter of the proposals are of kind `shape` (in decide.sequential.unpaired_kinds),
  whose paired noise is 3x the others' (`optimizer`): a seed deviation of sd sqrt(8) x the others' paired sd,
  inherited by every config built on the change.
- crashes: gpu-sessions, 10% of trainings crash for a reason that may not repeat (a killed process): a
  candidate's first run crashing is a crash row (the product records it, nothing is retried); a paired run
  crashing is retried once on another seed (decide.paired_crash_retries). Baselines do not crash here (the
  product stops a run whose baseline crashed).
- drift: gpu-sessions, 100 proposals, the machine drifting linearly with the training count by one seed sd
  per 150 trainings (a 100-proposal run's usual count), later runs better or worse (the sign per simulated run).
- heavy-tails: cpu's sds, every part drawn from Student's t with 3 degrees of freedom scaled to that sd.
Regimes without a speed signal run with decide.speed.adjust=false; every proposal has a kind (`optimizer`
unless said), passed to the decision as flows/research.py passes conf/space.yaml's kind of the changed key.

Proposal classes: `null` (every proposal does nothing), `2x` (every proposal gains 2 sds of the regime's unit:
its seed-to-seed sd; h200-speed: 0.0005, the sd of a run without the adjustment), `mix` (half worse by one sd,
40% null, 10% better by two: most proposals do not help); h200-speed also `0.0002` and `0.0015` (absolute gains
in val_bpb: the issue's moonshot, and what today's rule needs). Trainings per proposal count every training after
the baselines, crashed ones and the incumbent's extra seeds included.

    .venv/bin/python bench/decide_sim.py [--runs 200] [--proposals 16] [--regimes cpu drift]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research.judging.verdict import Trained, decision_fields, first_seed, judge_baseline, judge_failure  # noqa: E402
from research.judging.paired_runs import INCUMBENT, PairedRun, settle_pairs  # noqa: E402

BASE_SEED = 42
REF_SPEED = 1000.0  # GFLOP/s of the speed probe on an average training
NOISY, PLAIN = "shape", "optimizer"  # the kinds (conf/space.yaml kinds): shape is in decide.sequential.unpaired_kinds


@dataclass(frozen=True)
class NoiseModel:
    offset_sd: float
    interaction_sd: float
    run_sd: float
    unit_sd: float | None = None   # the "sd" the classes' gains are counted in; default the seed-to-seed sd
    speed_sd: float = 0.0          # sd of ln(machine speed) from one training to the next
    speed_slope: float = 0.0       # val_bpb per unit ln(speed): the world's truth
    session_range: float = 0.0     # a simulated run's own offset, uniform over +- half of this
    tails_df: int | None = None    # every part drawn from Student's t with these degrees of freedom (None: normal)
    crash_rate: float = 0.0        # share of trainings after the baselines that crash, a failure that may not repeat
    drift_sds: float = 0.0         # drift in seed sds per `drift_span` trainings, its sign drawn per simulated run
    drift_span: int = 150
    noisy_share: float = 0.0       # share of proposals of the noisier kind...
    noisy_ratio: float = 3.0       # ...whose paired sd is this many times the others'
    proposals: int | None = None   # proposals per simulated run (None: the command's --proposals)
    adjust: tuple = (False,)       # decide.speed.adjust values to show (the first one: what tests use)
    extra_classes: tuple = ()      # names of CLASSES only this regime shows

    @property
    def seed_sd(self) -> float:
        return math.sqrt(self.offset_sd ** 2 + self.interaction_sd ** 2 + self.run_sd ** 2
                         + (self.speed_slope * self.speed_sd) ** 2)

    @property
    def unit(self) -> float:
        return self.unit_sd or self.seed_sd

    @property
    def paired_sd(self) -> float:
        """A plain kind's paired sd (without speed): the seed's offset cancels."""
        return math.sqrt(2 * (self.interaction_sd ** 2 + self.run_sd ** 2))


GPU_SESSIONS = dict(offset_sd=0.0006, interaction_sd=0.0003, run_sd=0.00035)
CPU = dict(offset_sd=0.012, interaction_sd=0.004, run_sd=0.004)
REGIMES = {
    "gpu-session": NoiseModel(0.00008, 0.00004, 0.00004),
    "gpu-sessions": NoiseModel(**GPU_SESSIONS),
    "cpu": NoiseModel(**CPU),
    "h200-speed": NoiseModel(0.0, 0.0, 0.00010, unit_sd=0.0005, speed_sd=0.0082, speed_slope=-0.059,
                             session_range=0.0022, adjust=(True, False), extra_classes=("0.0002", "0.0015")),
    "noisy-quarter": NoiseModel(**CPU, noisy_share=0.25),
    "crashes": NoiseModel(**GPU_SESSIONS, crash_rate=0.10),
    "drift": NoiseModel(**GPU_SESSIONS, drift_sds=1.0, proposals=100),
    "heavy-tails": NoiseModel(**CPU, tails_df=3),
}
# (share, gain): gains in the regime's unit sd, or (`absolute` classes) in val_bpb.
CLASSES = {"null": ((1.0, 0.0),), "2x": ((1.0, 2.0),), "mix": ((0.5, -1.0), (0.4, 0.0), (0.1, 2.0)),
           "0.0002": ((1.0, 0.0002),), "0.0015": ((1.0, 0.0015),)}
ABSOLUTE = {"0.0002", "0.0015"}


class World:
    """One simulated run's hidden truth: each config's mean and parent, each (config, seed)'s offset and
    interaction, the machine's drift and session offset; every training it measures counts."""

    def __init__(self, model: NoiseModel, rng: random.Random):
        self.model, self.rng = model, rng
        self.means: dict[int, float] = {0: 1.0}
        self.parents: dict[int, int] = {}
        self.noisy: set[int] = set()
        self.offsets: dict[tuple[int, int], float] = {}
        self.interactions: dict[tuple[int, int], float] = {}
        self.trainings = 0
        self.session = rng.uniform(-0.5, 0.5) * model.session_range if model.session_range else 0.0
        self.drift = (rng.choice((-1.0, 1.0)) * model.drift_sds * model.seed_sd / model.drift_span
                      if model.drift_sds else 0.0)

    def add_config(self, config: int, parent: int, gain: float, noisy: bool = False) -> None:
        """A change of `parent` that lowers its val_bpb by `gain`; a noisy one deviates on every seed its own way."""
        self.means[config], self.parents[config] = self.means[parent] - gain, parent
        if noisy:
            self.noisy.add(config)

    def draw(self, sd: float) -> float:
        if not sd:
            return 0.0
        df = self.model.tails_df
        if df is None:
            return self.rng.gauss(0, sd)
        t = self.rng.gauss(0, 1) / math.sqrt(self.rng.gammavariate(df / 2, 2) / df)
        return sd * t / math.sqrt(df / (df - 2))  # Student's t scaled to sd

    def offset(self, config: int, seed: int) -> float:
        key = (config, seed)
        if key not in self.offsets:
            if config == 0 or config not in self.parents:
                self.offsets[key] = self.draw(self.model.offset_sd)
            else:
                own = (self.draw(math.sqrt(self.model.noisy_ratio ** 2 - 1) * self.model.paired_sd)
                       if config in self.noisy else 0.0)
                self.offsets[key] = self.offset(self.parents[config], seed) + own
        return self.offsets[key]

    def measure(self, config: int, seed: int) -> tuple[float, float | None]:
        """(val_bpb, the machine's speed or None where the regime has no speed signal) of one more training."""
        m = self.model
        self.trainings += 1
        interaction = self.interactions.setdefault((config, seed), self.draw(m.interaction_sd))
        log_speed = self.rng.gauss(0, m.speed_sd) if m.speed_sd else 0.0
        value = (self.means[config] + self.session + self.offset(config, seed) + interaction
                 + m.speed_slope * log_speed + self.drift * self.trainings + self.draw(m.run_sd))
        return value, (REF_SPEED * math.exp(log_speed) if m.speed_sd else None)

    def crashes(self) -> bool:
        return bool(self.model.crash_rate) and self.rng.random() < self.model.crash_rate

    def train(self, candidate: int, incumbent_config: int):
        """research.judging.paired_runs' `train` callable: each asked-for (role, seed) measured in this world."""
        def train(runs: list[tuple[str, int]]) -> dict[tuple[str, int], PairedRun]:
            done = {}
            for role, seed in runs:
                if self.crashes():
                    self.trainings += 1
                    done[(role, seed)] = PairedRun(None, failure="killed (simulated)", repeats=False)
                    continue
                value, speed = self.measure(incumbent_config if role == INCUMBENT else candidate, seed)
                done[(role, seed)] = PairedRun(value, speed)
            return done
        return train


def draw_gain(mix, rng: random.Random) -> float:
    """A proposal's true gain, in the class's units (negative = worse)."""
    pick, total = rng.random(), 0.0
    for share, gain in mix:
        total += share
        if pick < total:
            return gain
    return mix[-1][1]


def _speeds(seed: int, speed: float | None) -> dict:
    return {seed: speed} if speed else {}


def baseline_rows(world: World, settings: dict) -> list[dict]:
    rows: list[dict] = []
    for b in range(int(settings["baseline_repeats"])):
        seed = BASE_SEED + b
        value, speed = world.measure(0, seed)
        trained = Trained({seed: value}, {}, _speeds(seed, speed))
        rows.append({"exp": b, "seed": seed, **decision_fields(judge_baseline(rows, seed, value), trained)})
    return rows


def judge_in_world(world: World, rows: list[dict], settings: dict, exp: int, best_config: int, seed: int,
                   kind: str | None = None):
    """The product's verdict on config `exp` against the incumbent `best_config`: its first run on `seed`, then
    research.judging.paired_runs.settle_pairs with every run it asks for trained in the simulated world. Returns
    (decision, what it trained, trainings spent, the first run included). A first run that crashes (for a reason
    that may not repeat) is retried on another seed, and is a crash row only when the retry fails too, as in
    flows/research.py."""
    if world.crashes():
        world.trainings += 1
        failure = "killed (simulated)"
        first = Trained({}, {}, {}, {}, failed_seeds=(seed,))
        decision, trained, spent = settle_pairs(rows, settings, first, world.train(exp, best_config), BASE_SEED,
                                                kind=kind, first_failure=failure)
        if not trained.candidate:
            return judge_failure(rows, "crash", f"training failed: {failure}"), Trained({}), 1 + spent
        return decision, trained, 1 + spent
    value, speed = world.measure(exp, seed)
    first = Trained({seed: value}, {}, _speeds(seed, speed), {})
    decision, trained, spent = settle_pairs(rows, settings, first, world.train(exp, best_config), BASE_SEED,
                                            kind=kind)
    return decision, trained, 1 + spent


@dataclass
class Tally:
    proposals: dict = field(default_factory=lambda: {PLAIN: 0, NOISY: 0})
    kept: dict = field(default_factory=lambda: {PLAIN: 0, NOISY: 0})
    trainings: int = 0
    true_gain: float = 0.0  # in the class's units, summed over runs
    runs: int = 0


def simulate_run(settings: dict, model: NoiseModel, mix, proposals: int, rng: random.Random, tally: Tally,
                 unit: float) -> list[dict]:
    """One run: baselines, then `proposals` proposals judged by the product's loop; adds to `tally`."""
    world = World(model, rng)
    rows = baseline_rows(world, settings)
    best_config = 0
    for exp in range(len(rows), len(rows) + proposals):
        gain = draw_gain(mix, rng)
        kind = NOISY if rng.random() < model.noisy_share else PLAIN
        # A gain in the change's own noise: a 2x-sd change of the noisier kind gains 2 of its (larger) sds
        world.add_config(exp, best_config, gain * unit * (model.noisy_ratio if kind == NOISY else 1.0),
                         noisy=kind == NOISY)
        seed = first_seed(rows, BASE_SEED, int(settings.get("control_every") or 0))  # as flows/research.py
        decision, trained, spent = judge_in_world(world, rows, settings, exp, best_config, seed, kind)
        rows.append({"exp": exp, "seed": seed, **decision_fields(decision, trained), "change_kind": kind})
        tally.trainings += spent
        tally.proposals[kind] += 1
        if decision.keep:
            tally.kept[kind] += 1
            best_config = exp
    tally.true_gain += (world.means[0] - world.means[best_config]) / unit
    tally.runs += 1
    return rows


def rates(settings: dict, model: NoiseModel, cls: str, runs: int, proposals: int | None, seed: int) -> dict:
    """Keep rate (overall and within the noisier kind) and trainings per proposal over `runs` simulated runs of
    class `cls`."""
    rng, tally = random.Random(seed), Tally()
    unit = 1.0 if cls in ABSOLUTE else model.unit
    count = model.proposals or proposals or 16
    for _ in range(runs):
        simulate_run(settings, model, CLASSES[cls], count, rng, tally, unit)
    n = sum(tally.proposals.values())
    noisy = tally.proposals[NOISY]
    return {"kept": sum(tally.kept.values()) / n, "kept_noisy": tally.kept[NOISY] / noisy if noisy else None,
            "kept_plain": tally.kept[PLAIN] / tally.proposals[PLAIN] if tally.proposals[PLAIN] else None,
            "trainings": tally.trainings / n, "true_gain": tally.true_gain / runs, "proposals": n}


def rule_settings(rule: str, adjust: bool = False) -> dict:
    """conf/config.yaml's decide block, with decide.rule set and decide.speed.adjust resolved (flows.compose turns
    `auto` into true for a time budget; here it is said outright)."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "config.yaml").read_text())
    decide = config["decide"]
    return {**decide, "rule": rule, "speed": {**decide["speed"], "adjust": bool(adjust)}}


def regime_settings(name: str, rule: str = "sequential", adjust: bool | None = None) -> dict:
    return rule_settings(rule, REGIMES[name].adjust[0] if adjust is None else adjust)


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def table(runs: int, proposals: int, seed: int = 0, regimes=None) -> list[str]:
    lines = ["| regime | rule | null kept (goal <= 5%) | null kept, noisier kind (<= 5%) | 2x sd kept (goal >= 80%) | "
             "2x kept, noisier kind | trainings / proposal: null, 2x, mix (goal <= 1.6) | true gain, mix (sds) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    extra = ["| regime | rule | gain (val_bpb) | kept | trainings / proposal |", "|---|---|---:|---:|---:|"]
    for name in regimes or REGIMES:
        model = REGIMES[name]
        rules = [("single", False)] if name in ("gpu-session", "gpu-sessions", "cpu") else []
        rules += [("sequential", adjust) for adjust in model.adjust]
        for rule, adjust in rules:
            settings = rule_settings(rule, adjust)
            label = rule + (f", speed.adjust={str(adjust).lower()}" if model.speed_sd else "")
            got = {cls: rates(settings, model, cls, runs, proposals, seed) for cls in ("null", "2x", "mix")}
            lines.append(f"| {name} | {label} | {_pct(got['null']['kept'])} | {_pct(got['null']['kept_noisy'])} | "
                         f"{_pct(got['2x']['kept'])} | {_pct(got['2x']['kept_noisy'])} | "
                         f"{got['null']['trainings']:.2f}, {got['2x']['trainings']:.2f}, {got['mix']['trainings']:.2f} | "
                         f"{got['mix']['true_gain']:.2f} |")
            for cls in model.extra_classes:
                got = rates(settings, model, cls, runs, proposals, seed)
                extra.append(f"| {name} | {label} | {cls} | {_pct(got['kept'])} | {got['trainings']:.2f} |")
    return lines + ([""] + extra if len(extra) > 2 else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="simulated runs per cell")
    parser.add_argument("--proposals", type=int, default=16, help="proposals per run (drift: always 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regimes", nargs="*", choices=sorted(REGIMES), help="default: all")
    args = parser.parse_args()
    started = time.perf_counter()
    print("\n".join(table(args.runs, args.proposals, args.seed, args.regimes)))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
