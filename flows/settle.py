"""Carry out what the sequential verdict asks for: more paired runs of a candidate, and of the incumbent on seeds
it lacks, until research.decide settles the candidate. The judging is research.decide's; this only trains.

Extra runs live beside the candidate's first one: exp/<N>/seed-<S>/ for the candidate, exp/<N>/incumbent-<S>/
for the incumbent. Each is an ordinary training + evaluation with its own cache key, so a run killed in the
middle of a decision re-uses every finished run on resume, and the verdict, a pure function of the ledger and
those runs, comes out the same.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from research.decide import CONTINUE, Decision, finite_or_none, judge_candidate
from training.run_config import config_hash, training_config, write_training_config


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


def settle(runner, setup, candidate_hparams: dict, first_val_bpb: float, rows: list[dict],
           selected_from: int = 1) -> tuple[Decision, dict, dict]:
    """(decision, the candidate's runs, the incumbent's new runs) once research.decide stops asking for pairs."""
    settings, default_seed = runner.cfg["decide"], int(runner.cfg["hparams"]["seed"])
    candidate, incumbent_new = {setup.seed: first_val_bpb}, {}
    while True:
        decision = judge_candidate(rows, settings, candidate, incumbent_new, default_seed, selected_from)
        if decision.status != CONTINUE:
            return decision, candidate, incumbent_new
        seed = decision.next_seed
        if decision.incumbent_runs_next:
            value = extra_run(runner, setup, setup.state.hparams, seed, "incumbent")
            if value is None:
                failure = f"the incumbent's paired run on seed {seed} failed"
                return (judge_candidate(rows, settings, candidate, incumbent_new, default_seed, selected_from, failure),
                        candidate, incumbent_new)
            incumbent_new[seed] = value
        if seed not in candidate:
            value = extra_run(runner, setup, candidate_hparams, seed, "seed")
            if value is None:
                failure = f"the candidate's paired run on seed {seed} failed"
                return (judge_candidate(rows, settings, candidate, incumbent_new, default_seed, selected_from, failure),
                        candidate, incumbent_new)
            candidate[seed] = value
