"""Proposers compared at 16, 50 and 100 proposals on a surrogate of the real landscape (bench/surrogate.py), with
the product's own loop deciding: experiment/loop.py, the lifecycle, the paired sequential keep rule, the ledger
and the run repository, all as a research run has them; only the training is the surrogate's draw.

    python bench/surrogate_replay.py [--landscape bench/results/landscape.csv] [--proposers local,tpe,random]
                                     [--proposals 16,50,100] [--base-seeds 20] [--first-seed 0] [overrides...]

Per proposer and base seed, one run of max(PROPOSALS) proposals on the cpu preset (its own keep rule settings;
Hydra overrides after the options change them), on landscape salt = base seed (the pairwise interactions and the
seed offsets are drawn per salt, the same for every proposer). At each count N the run's incumbent after its
first N proposals is scored by its true (noise-free) gain over the default: what `autoresearch finalize` estimates
with many seeds. Also counted up to N: trainings (paired runs included), crashes. Per pair of proposers, the
per-seed gains are compared with a Wilcoxon signed-rank test (two-sided).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.paired_stats import pairwise_lines  # noqa: E402
from bench.surrogate import Landscape, describe, fit, read_rows  # noqa: E402
from experiment.lifecycle import ExperimentLifecycle, RunContext  # noqa: E402
from experiment.loop import run_experiments  # noqa: E402
from experiment.outcome import Outcome  # noqa: E402
from experiment.record import record_experiment  # noqa: E402
from flows.compose import CONF_DIR, compose  # noqa: E402
from research.errors import ResearchStopped  # noqa: E402
from research.proposing.space import load_space  # noqa: E402
from research.records.heartbeat import Heartbeat  # noqa: E402
from research.records.layout import RunLayout  # noqa: E402
from research.records.ledger import Ledger  # noqa: E402
from research.records.runrepo import RunRepo  # noqa: E402
from research.records.state import derive_state, hparams_yaml  # noqa: E402
from tasks.propose import propose_change  # noqa: E402
from training.run_config import ExperimentDir  # noqa: E402

SURROGATE_CRASH = {"status": "failed", "kind": "oom", "reason": "out of memory (the surrogate's crash region)"}


class SurrogateSteps:
    """experiment.steps.Steps that answer every training with the landscape's draw for its block and seed."""

    trains_here = False  # the landscape's crash region stands in for the fit check

    def __init__(self, landscape: Landscape, defaults: dict, salt: int):
        self.landscape, self.defaults, self.salt = landscape, defaults, salt
        self.rng = np.random.default_rng([salt, 17])
        self.trainings = 0
        self.trainings_at: dict[int, int] = {}  # exp -> trainings done when its row was recorded

    def propose(self, exp, directory, proposer_cfg, context, cache_key):
        return propose_change(str(directory), proposer_cfg, context)

    def train_and_evaluate(self, setup, deadline, silence, eval_silence, before_evaluation) -> Outcome:
        hparams = json.loads(ExperimentDir(setup.directory).config.read_text())["hparams"]
        self.trainings += 1
        value = self.landscape.measure(hparams, self.defaults, int(hparams["seed"]), self.rng, self.salt)
        if value is None:
            return Outcome(dict(SURROGATE_CRASH))
        before_evaluation()
        return Outcome({"status": "ok"}, {"status": "ok", "val_bpb": value})

    def record(self, run_dir, tag, facts, decision, trained, run_info) -> dict:
        row = record_experiment(str(run_dir), facts, decision, trained, run_info)
        self.trainings_at[row["exp"]] = self.trainings
        return row

    def after_record(self, run_dir, tag) -> None:
        pass


def replay(landscape: Landscape, proposer: str, base_seed: int, proposals: int, workdir: Path,
           overrides: list[str]) -> list[dict]:
    """One run; per experiment row: the incumbent's true gain after it, trainings and crashes so far."""
    tag = f"{proposer}-{base_seed}"
    # The proposers' seeds follow hparams.seed (+ exp): base seeds differ in proposals, not only in noise.
    cfg = compose(["preset=cpu", f"proposer={proposer}", f"tag={tag}", f"hparams.seed={42 + 1000 * base_seed}",
                   *overrides], auto=False)
    cfg["research"]["max_experiments"] = int(cfg["decide"]["baseline_repeats"]) + proposals
    run_dir = workdir / tag
    run_dir.mkdir(parents=True)
    space, defaults = load_space(CONF_DIR / "space.yaml"), cfg["hparams"]
    layout = RunLayout(run_dir)
    repo = RunRepo(layout.repo)
    repo.init(hparams_yaml(defaults))
    steps = SurrogateSteps(landscape, defaults, base_seed)
    data = {"shard_dir": str(run_dir), "tokenizer_dir": str(run_dir), "data_version": "surrogate"}
    run_info = {"dataset": "surrogate", "data_version": "surrogate", "code_version": "replay", "proposer": proposer}
    life = ExperimentLifecycle(RunContext(cfg, run_dir, tag, repo, space, data, run_info,
                                          Heartbeat(layout.heartbeat, tag)), steps)
    ledger = Ledger(layout.results)
    try:
        run_experiments(life, ledger)
    except ResearchStopped:
        pass  # too many crashes in a row: the run stops as a real one would, with what it kept
    rows = ledger.rows()
    default_true = landscape.true_val_bpb(defaults, defaults, base_seed)
    out = []
    for i, row in enumerate(rows):
        state = derive_state(rows[:i + 1], repo, defaults, space)
        incumbent = {**state.hparams, "seed": defaults["seed"]}
        true = landscape.true_val_bpb(incumbent, defaults, base_seed)
        out.append({"exp": row["exp"], "status": row["status"], "gain": default_true - true,
                    "trainings": steps.trainings_at.get(row["exp"], 0),
                    "crashes": sum(r["status"] == "crash" for r in rows[:i + 1])})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landscape", type=Path, default=ROOT / "bench" / "results" / "landscape.csv")
    parser.add_argument("--proposers", default="local,tpe,random")
    parser.add_argument("--proposals", default="16,50,100")
    parser.add_argument("--base-seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    args, overrides = parser.parse_known_args(argv)
    counts = sorted(int(n) for n in args.proposals.split(","))
    proposers = [name for name in args.proposers.split(",") if name]
    space = load_space(CONF_DIR / "space.yaml")
    defaults = compose(["preset=cpu"], auto=False)["hparams"]
    landscape = fit(read_rows(args.landscape), space, defaults)
    seeds = range(args.first_seed, args.first_seed + args.base_seeds)
    gains = {(name, n): [] for name in proposers for n in counts}
    spent = {(name, n): [] for name in proposers for n in counts}
    crashes = {(name, n): [] for name in proposers for n in counts}
    started = time.perf_counter()
    baselines = int(compose(["preset=cpu", *overrides], auto=False)["decide"]["baseline_repeats"])
    with tempfile.TemporaryDirectory(prefix="surrogate-replay-") as workdir:
        for name in proposers:
            for seed in seeds:
                rows = replay(landscape, name, seed, max(counts), Path(workdir), overrides)
                for n in counts:
                    upto = rows[:baselines + n]
                    gains[name, n].append(upto[-1]["gain"])
                    spent[name, n].append(upto[-1]["trainings"])
                    crashes[name, n].append(upto[-1]["crashes"])
    print(f"surrogate of {args.landscape.name} (gains: block minus default, negative is better): "
          + "\n".join(describe(landscape)))
    print(f"\nbase seeds {seeds.start}-{seeds.stop - 1}; replayed in {time.perf_counter() - started:.0f} s")
    hours = (landscape.seconds_per_training or math.nan) / 3600  # per training: the landscape's mean training time
    print("\n| proposals | proposer | mean true gain | median | trainings | crashes | gain per training hour |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in counts:
        for name in proposers:
            g, t, c = gains[name, n], spent[name, n], crashes[name, n]
            print(f"| {n} | {name} | {np.mean(g):.4f} | {np.median(g):.4f} | {np.mean(t):.1f} | {np.mean(c):.1f} | "
                  f"{np.sum(g) / max(1, np.sum(t)) / hours:.4f} |")
    for n in counts:
        print(f"\nAfter {n} proposals, per base seed:\n")
        print("\n".join(pairwise_lines({name: gains[name, n] for name in proposers})))


if __name__ == "__main__":
    main()
