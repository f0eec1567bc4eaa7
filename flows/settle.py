"""Carry out what the sequential verdict asks for: more paired runs of a candidate, and of the incumbent on seeds
it lacks, until research.decide settles the candidate. The judging is research.decide's; this only trains.

Extra runs live beside the candidate's first one: exp/<N>/seed-<S>/ for the candidate, exp/<N>/incumbent-<S>/
for the incumbent. Each is an ordinary training + evaluation with its own cache key, so a run killed in the
middle of a decision re-uses every finished run on resume, and the verdict, a pure function of the ledger and
those runs, comes out the same.

With research.parallel=K (K devices), the runs the verdict would ask for next are trained K at a time: the
pair's incumbent and candidate runs together, then the following pairs' runs while devices are free, up to the
pairs max_pairs still allows. The verdict still reads them one pair at a time in seed order and stops where the
one-at-a-time loop would, so it is the same verdict; runs trained past that point are the price of not waiting
on idle devices (they stay in their folders; the ledger, and the training count of the run's cost, hold only the
runs the verdict read).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from flows.parallel import run_at_once
from research.decide import CONTINUE, Decision, finite_or_none, judge_candidate
from research.pairing import incumbent, next_pair_seed
from training.run_config import config_hash, training_config, write_training_config

INCUMBENT, CANDIDATE = "incumbent", "seed"  # the roles, as the extra runs' folder prefixes


def extra_run(runner, setup, hparams: dict, seed: int, role: str) -> float | None:
    """val_bpb of `hparams` trained on `seed` for this decision (None when that run failed)."""
    directory = Path(setup.directory) / f"{role}-{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    run_cfg = training_config(runner.cfg, hparams, seed, runner.data, runner.cfg.get("fault"))
    write_training_config(directory, run_cfg)
    extra = replace(setup, directory=directory, seed=seed, label=f"{setup.label} [{role} seed {seed}]",
                    key=f"{setup.key}-{role}{seed}-{config_hash(run_cfg)}")
    _, evaluation = runner.execute(extra)
    if not evaluation or evaluation.get("status") != "ok":
        return None
    return finite_or_none(evaluation.get("val_bpb"))


def runs_ahead(decision: Decision, candidate_seeds, incumbent_seeds, default_seed: int) -> list[tuple[str, int]]:
    """The (role, seed) runs the verdict asks for if every pair left stays undecided, in the order it reads them."""
    candidate_seeds, incumbent_seeds = set(candidate_seeds), set(incumbent_seeds)
    seed, incumbent_lacks = decision.next_seed, decision.incumbent_runs_next
    runs = []
    for _ in range(max(1, decision.pairs_left)):
        if incumbent_lacks:
            runs.append((INCUMBENT, seed))
        if seed not in candidate_seeds:
            runs.append((CANDIDATE, seed))
        candidate_seeds.add(seed)
        incumbent_seeds.add(seed)
        seed, incumbent_lacks = next_pair_seed(incumbent_seeds, candidate_seeds, default_seed)
    return runs


def train_runs(runner, setup, candidate_hparams: dict, runs: list[tuple[str, int]]) -> dict[tuple[str, int], float | None]:
    """Train `runs` at once (one alone: here, as before); val_bpb by (role, seed)."""
    def one(role_seed):
        role, seed = role_seed
        return extra_run(runner, setup, setup.state.hparams if role == INCUMBENT else candidate_hparams, seed, role)

    return dict(zip(runs, run_at_once(one, runs, "paired")))


def settle(runner, setup, candidate_hparams: dict, first_val_bpb: float, rows: list[dict],
           selected_from: int = 1) -> tuple[Decision, dict, dict]:
    """(decision, the candidate's runs, the incumbent's new runs) once research.decide stops asking for pairs."""
    settings, default_seed = runner.cfg["decide"], int(runner.cfg["hparams"]["seed"])
    width = max(1, int(runner.cfg["research"].get("parallel") or 1))  # trainings at once: one per device
    candidate, incumbent_new = {setup.seed: first_val_bpb}, {}
    trained: dict[tuple[str, int], float | None] = {}
    while True:
        decision = judge_candidate(rows, settings, candidate, incumbent_new, default_seed, selected_from)
        if decision.status != CONTINUE:
            return decision, candidate, incumbent_new
        ahead = runs_ahead(decision, candidate, {**incumbent(rows).runs, **incumbent_new}, default_seed)
        seed = decision.next_seed
        pair = [run for run in ahead if run[1] == seed]  # this pair's runs, the incumbent's first
        if any(run not in trained for run in pair):
            trained.update(train_runs(runner, setup, candidate_hparams, [run for run in ahead if run not in trained][:width]))
        for role, _ in pair:
            if (role, seed) not in trained:  # one device: the pair's second run, after its first succeeded
                trained.update(train_runs(runner, setup, candidate_hparams, [(role, seed)]))
            value = trained[(role, seed)]
            if value is None:
                whose = "incumbent's" if role == INCUMBENT else "candidate's"
                failure = f"the {whose} paired run on seed {seed} failed"
                return (judge_candidate(rows, settings, candidate, incumbent_new, default_seed, selected_from, failure),
                        candidate, incumbent_new)
            (incumbent_new if role == INCUMBENT else candidate)[seed] = value
