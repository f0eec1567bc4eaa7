"""The Prefect host of an experiment's life (experiment/steps.py's interface): each step a Prefect task run, the
training on this machine's devices (tasks/gpu_slots.py) or on a work pool's hosts (flows/pool.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from experiment.outcome import Outcome
from experiment.record import ExperimentFacts
from experiment.setup import ExperimentSetup
from flows.train_evaluate import train_then_evaluate
from hardware import detect
from research.judging.verdict import Decision, Trained
from research.proposing.proposal_record import ProposalRecord
from research.proposing.proposers.base import ProposalContext
from tasks.artifacts import publish_progress_plot
from tasks.evaluate import evaluate_task
from tasks.gpu_slots import check_parallel_fits, resolve_slots
from tasks.propose import propose_task
from tasks.record import record_task


class PrefectSteps:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.slots = resolve_slots(cfg.get("slots"), detect(cfg.get("backend") or "auto"))
        self.pool_deployment = None
        if cfg["research"].get("executor", "local") == "pool":
            from flows.pool import ensure_pool_deployment

            self.pool_deployment = ensure_pool_deployment(cfg["research"]["pool"])
        else:  # the pool's workers hold their own hosts' devices; here, this machine's GPUs must fit the round
            check_parallel_fits(max(1, int(cfg["research"].get("parallel") or 1)), self.slots)

    @property
    def trains_here(self) -> bool:
        return self.pool_deployment is None

    def propose(self, exp: int, directory: Path, proposer_cfg: dict, context: ProposalContext,
                cache_key: str) -> ProposalRecord:
        return propose_task(exp, str(directory), proposer_cfg, context, cache_key=cache_key)

    def train_and_evaluate(self, setup: ExperimentSetup, deadline: float | None, silence: float | None,
                           eval_silence: float, before_evaluation: Callable[[], None]) -> Outcome:
        if self.pool_deployment:
            from flows.pool import run_on_pool

            return Outcome.of(run_on_pool(self.pool_deployment, self.cfg["research"]["pool"], setup.exp,
                                          str(setup.directory), deadline, eval_silence, setup.key, setup.label,
                                          self.cfg.get("slots"), self.cfg.get("backend") or "auto", silence))
        return Outcome.of(train_then_evaluate(setup.exp, str(setup.directory), deadline, silence, eval_silence,
                                              setup.key, setup.label, self.slots, before_evaluation))

    def evaluate(self, exp: int, directory: Path, silence: float, cache_key: str, label: str) -> dict:
        # On this machine's devices even with a work pool: the checkpoint is in the run folder the pool's hosts
        # write to, and one evaluation is not worth a pool round trip.
        return evaluate_task(exp, str(directory), silence, cache_key=cache_key, label=label, slots=self.slots)

    def record(self, run_dir: Path, tag: str, facts: ExperimentFacts, decision: Decision, trained: Trained,
               run_info: dict) -> dict:
        return record_task(str(run_dir), tag, facts, decision, trained, run_info)

    def after_record(self, run_dir: Path, tag: str) -> None:
        publish_progress_plot(str(run_dir), tag)
