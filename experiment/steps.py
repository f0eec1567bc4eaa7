"""What an experiment's life asks of the process that hosts it: the steps that run as Prefect tasks there.

experiment/lifecycle.py decides what happens in which order and judges the result; a host (flows/steps.py, the
Prefect one) carries out these steps. Keeping them behind this interface is what keeps Prefect out of experiment/:
a test can host an experiment with plain functions, and the flows only wrap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from experiment.outcome import Outcome
from experiment.record import ExperimentFacts
from experiment.setup import ExperimentSetup
from research.judging.verdict import Decision, Trained
from research.proposing.proposal_record import ProposalRecord
from research.proposing.proposers.base import ProposalContext


class Steps(Protocol):
    trains_here: bool
    """False when trainings run on other hosts (a work pool): this machine's device then judges no block's fit."""

    def propose(self, exp: int, directory: Path, proposer_cfg: dict, context: ProposalContext,
                cache_key: str) -> ProposalRecord:
        """ONE validated change (or a skip record), asked once per cache key."""

    def train_and_evaluate(self, setup: ExperimentSetup, deadline: float | None, silence: float | None,
                           eval_silence: float, before_evaluation: Callable[[], None]) -> Outcome:
        """setup.directory's config.json trained, then evaluated if the training succeeded."""

    def evaluate(self, exp: int, directory: Path, silence: float, cache_key: str, label: str) -> dict:
        """directory's checkpoint evaluated once more, on the split its config.json names (finalize scores its
        final arms on the test split this way); the evaluation's metrics."""

    def record(self, run_dir: Path, tag: str, facts: ExperimentFacts, decision: Decision, trained: Trained,
               run_info: dict) -> dict:
        """The ledger row of the verdict (experiment.record.record_experiment), as recorded."""

    def after_record(self, run_dir: Path, tag: str) -> None:
        """Whatever the host shows after a row (the Prefect UI's progress plot)."""
