"""Carry out what the sequential verdict asks for: more paired runs of a candidate, and of the incumbent on seeds
it lacks, until research.judging.verdict settles the candidate. The loop is research.judging.paired_runs'; this only trains.

Extra runs live beside the candidate's first one: exp/<N>/seed-<S>/ for the candidate, exp/<N>/incumbent-<S>/
for the incumbent. Each is an ordinary training + evaluation with its own cache key, so a run killed in the
middle of a decision re-uses every finished run on resume, and the verdict, a pure function of the ledger and
those runs, comes out the same. With research.parallel=K the runs are trained K at a time (research.judging.paired_runs
says how); runs trained past the verdict's stopping point stay in their folders; the ledger, and the training
count of the run's cost, hold only the runs the verdict read.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from experiment.rounds import run_at_once
from experiment.setup import ExperimentSetup
from research.judging.paired_runs import CANDIDATE, INCUMBENT, PairedRun, settle_pairs
from research.judging.pairing import incumbent
from research.judging.verdict import Decision, Trained
from training.run_config import config_hash, training_config, write_training_config

if TYPE_CHECKING:  # the lifecycle calls settle, settle calls back its execute
    from experiment.lifecycle import ExperimentLifecycle


def block_label(setup: ExperimentSetup, role: str, paired_exp: int) -> str:
    """The block a paired run trains, as the UI names it (ExperimentLifecycle.execute adds the seed): the
    candidate's change, or the incumbent by its experiment."""
    if role == CANDIDATE:
        return setup.label
    return "incumbent (baseline)" if paired_exp == 0 else f"incumbent (exp {paired_exp})"


def extra_run(life: ExperimentLifecycle, setup: ExperimentSetup, hparams: dict, seed: int, role: str,
              paired_exp: int = 0) -> PairedRun:
    """`hparams` trained and evaluated on `seed` for this decision."""
    directory = Path(setup.directory) / f"{role}-{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    run_cfg = training_config(life.cfg, life.fitted_hparams(hparams, []), seed, life.data, life.cfg.get("fault"))
    write_training_config(directory, run_cfg)
    extra = replace(setup, directory=directory, seed=seed, label=block_label(setup, role, paired_exp),
                    key=f"{setup.key}-{role}{seed}-{config_hash(run_cfg)}")
    outcome = life.execute(extra)
    if outcome.val_bpb is None:
        return PairedRun(None, failure=outcome.failure, repeats=outcome.repeats)
    return PairedRun(outcome.val_bpb, outcome.machine_speed)


def settle(life: ExperimentLifecycle, setup: ExperimentSetup, candidate_hparams: dict, first_val_bpb: float | None,
           rows: list[dict], selected_from: int = 1, first_speed: float | None = None, kind: str | None = None,
           first_failure: str | None = None) -> tuple[Decision, Trained]:
    """(decision, what it trained) once research.judging.verdict stops asking for pairs. `first_failure`: the first
    run failed for a reason that may not repeat (first_val_bpb is None): the candidate gets its one retry."""
    paired_exp = incumbent(rows).exp

    def train(runs: list[tuple[str, int]]) -> dict[tuple[str, int], PairedRun]:
        def one(role_seed):
            role, seed = role_seed
            hparams = setup.state.hparams if role == INCUMBENT else candidate_hparams
            return extra_run(life, setup, hparams, seed, role, paired_exp)

        return dict(zip(runs, run_at_once(one, runs, "paired")))

    if first_failure is None:
        first = Trained({setup.seed: first_val_bpb}, {}, {setup.seed: first_speed} if first_speed else {}, {})
    else:
        first = Trained({}, {}, {}, {}, failed_seeds=(setup.seed,))
    width = max(1, int(life.cfg["research"].get("parallel") or 1))  # trainings at once: one per device
    decision, trained, _ = settle_pairs(rows, life.cfg["decide"], first, train, int(life.cfg["hparams"]["seed"]),
                                        width, selected_from, kind, first_failure)
    return decision, trained
