"""One experiment's life, in one place: set up (a proposal or a baseline seed, its commit, config.json, the fit
check) -> train and evaluate -> judge (training more pairs while the verdict asks for them) -> record.

`ExperimentLifecycle.run` does these in turn (research.parallel=1); a parallel round (experiment/rounds.py) sets up
its members one by one, trains them at once, and judges them in order; finalize (flows/finalize.py) trains its arms
through `execute`. The steps that run as Prefect tasks are the host's (experiment/steps.py); what happens, in what
order, and the verdict are decided here. Each stage publishes its event (experiment/events.py) for the views.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from experiment import events
from experiment.announce import announce
from experiment.outcome import Outcome
from experiment.paired import settle
from experiment.record import ExperimentFacts, failure_reason
from experiment.run_events import experiment_started
from experiment.setup import ExperimentSetup
from experiment.steps import Steps
from hardware import detect, get_adapter
from research.errors import ResearchStopped
from research.judging.verdict import (Decision, Trained, finite_or_none, first_seed, judge_baseline, judge_failure,
                                      keep_margin, round_loser)
from research.proposing.proposal_record import ProposalRecord
from research.proposing.proposers.base import ProposalContext
from research.proposing.space import Space, apply_change
from research.records.heartbeat import Heartbeat
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from research.records.runrepo import RunRepo
from research.records.state import RunState, hparams_yaml
from training.fit import Fit, FitCheck, device_facts, measured_flops_per_second
from training.run_config import ExperimentDir, config_hash, training_config, vocab_size, write_training_config


def training_limits(budget: dict) -> tuple[float | None, float | None]:
    """(deadline, silence) in seconds before a training is killed as hung: generous, never a second budget.

    A time budget bounds the whole run. A FLOP or steps budget cannot: a bigger proposed model takes longer for the
    same steps, so there the training is killed only once it has printed nothing (no step, no message) for
    grace * factor seconds."""
    grace = float(budget["grace_seconds"])
    if budget["kind"] == "time":
        return float(budget["seconds"]) * float(budget["deadline_factor"]) + grace, None
    return None, grace * float(budget["deadline_factor"])


def describe_budget(budget: dict) -> str:
    """The budget as the proposer reads it."""
    amount = {"time": f"{budget['seconds']} s", "flops": f"{float(budget.get('flops') or 0):.3g} FLOPs",
              "steps": f"{budget['steps']} steps"}.get(budget["kind"], "")
    return f"{budget['kind']} budget: {amount}"


def describe_hardware(cfg: dict, rows: list[dict]) -> str:
    """The hardware line the proposer reads: preset, and the device the last training actually ran on."""
    ran = [row for row in rows if row.get("device_name")]
    device = f"{ran[-1]['backend']} ({ran[-1]['device_name']})" if ran else f"backend {cfg.get('backend', 'auto')}"
    return f"{device}, preset {cfg.get('preset') or 'custom'}"


@dataclass(frozen=True)
class RunContext:
    """The run an experiment belongs to: what every experiment of it reads and none changes."""

    cfg: dict                # the composed config, plain dicts
    run_dir: Path
    run_id: str              # part of every cache key (research/records/run_id.py)
    repo: RunRepo
    space: Space
    data: dict               # the prepared dataset (data.prepare's dict: shard_dir, tokenizer_dir, data_version)
    run_info: dict           # dataset, data_version, code_version, proposer: the same in every row
    heartbeat: Heartbeat


class ExperimentLifecycle:
    """The experiments of one run: each one's stages, in order, on the run's context and the host's steps."""

    def __init__(self, run: RunContext, steps: Steps):
        self.steps = steps
        self.cfg, self.run_dir, self.run_id, self.repo = run.cfg, run.run_dir, run.run_id, run.repo
        self.space, self.data, self.run_info, self.heartbeat = run.space, run.data, run.run_info, run.heartbeat
        self.fit_check, self.peak_flops = self._fit_check()

    # --- the fit check -------------------------------------------------------------------------------------
    def _fit_check(self) -> tuple[FitCheck | None, float | None]:
        """What training.fit needs to judge a block on this machine's device; None where the block trains
        elsewhere (a work pool's hosts) or with research.fit_check=false. research.fit_memory_gb=N judges
        against N GB instead of the device's memory (a device shared with other work; the tests)."""
        cfg = self.cfg
        if not self.steps.trains_here or not cfg["research"].get("fit_check", True):
            return None, None
        adapter = get_adapter(detect(cfg.get("backend") or "auto"))
        seq_len = int(cfg["train"]["seq_len"])
        facts = device_facts(adapter, cfg["train"].get("compile", "auto"), cfg["budget"]["kind"], seq_len,
                             embedding_dtype=cfg["train"].get("embedding_dtype") or "float32")
        if cfg["research"].get("fit_memory_gb"):
            facts = replace(facts, memory_bytes=int(float(cfg["research"]["fit_memory_gb"]) * 1e9),
                            name="research.fit_memory_gb")
        return FitCheck(seq_len, vocab_size({"data": self.data}), dict(cfg["budget"]), facts), adapter.peak_flops()

    def fit(self, hparams: dict, rows: list[dict]) -> Fit | None:
        """training.fit's verdict on a block about to train (run, lowered or skip), with the run's measured speed
        as the reference for a time budget's steps; None without a fit check."""
        if self.fit_check is None:
            return None
        return self.fit_check.with_speed(measured_flops_per_second(rows, self.peak_flops)).decide(hparams)

    def fitted_hparams(self, hparams: dict, rows: list[dict]) -> dict:
        """The block as it will train: device_batch_size lowered where only it does not fit (paired runs)."""
        fit = self.fit(hparams, rows)
        return fit.hparams if fit is not None and fit.status == "lowered" else hparams

    # --- the life ------------------------------------------------------------------------------------------
    def run(self, exp: int, state: RunState) -> dict:
        """Experiment `exp` from `state`, whole; its ledger row."""
        setup = self.set_up(exp, state)
        if setup.skipped:
            return self.judge_and_record(setup, Outcome(None))
        return self.judge_and_record(setup, self.execute(setup))

    def set_up(self, exp: int, state: RunState, in_flight: list | None = None) -> ExperimentSetup:
        """Proposal (or baseline seed), commit and config.json of experiment `exp`, on top of `state`."""
        cfg = self.cfg
        started = time.time()
        directory = RunLayout(self.run_dir).exp_dir(exp)
        directory.mkdir(parents=True, exist_ok=True)
        baseline = exp < int(cfg["decide"]["baseline_repeats"])
        proposal = None
        if baseline:
            seed = int(cfg["hparams"]["seed"]) + exp
            hparams = {**cfg["hparams"], "seed": seed}
            label, message = "baseline", f"exp{exp}: baseline seed={seed}"
        else:
            proposal = self._propose(exp, state, directory, in_flight or [])
            if not proposal.ok:
                return ExperimentSetup(exp, state, directory, proposal, "", int(state.hparams["seed"]), started,
                                       False, "skip", "", skipped=True)
            change = proposal.change
            hparams = apply_change(state.hparams, change)
            # A seed the incumbent ran (a free pair), or now and then a new one it trains too (a control)
            seed = first_seed(state.rows, int(cfg["hparams"]["seed"]), int(cfg["decide"].get("control_every") or 0))
            label, message = change.text, f"exp{exp}: {change.text} {change.description}"
        fit = self.fit(hparams, state.rows)
        if fit is not None and fit.status == "skip":  # no process is started for a block that cannot fit
            if baseline:
                raise ResearchStopped(f"The baseline block is {fit.note}; choose a smaller block or preset.")
            return ExperimentSetup(exp, state, directory, proposal, "", seed, started, False, label, "",
                                   skipped=True, fit=fit)
        announce(self.heartbeat, experiment_started(exp, proposal, seed))
        if exp == 0:
            commit_sha = self.repo.tag_sha(0)
        else:
            commit_sha = self.repo.commit_experiment(exp, hparams_yaml(hparams), message, state.base_sha)
        # The commit is the block as proposed; config.json is what trains (device_batch_size lowered if it must be).
        run_cfg = training_config(cfg, fit.hparams if fit else hparams, seed, self.data, cfg.get("fault"))
        write_training_config(directory, run_cfg)
        key = f"{self.run_id}-exp{exp}-{config_hash(run_cfg)}-{self.run_info['code_version']}"
        return ExperimentSetup(exp, state, directory, proposal, commit_sha, seed, started, baseline, label, key,
                               fit=fit)

    def execute(self, setup: ExperimentSetup) -> Outcome:
        """Training, then evaluation if the training succeeded, through the host's step."""
        state, exp = setup.state, setup.exp
        label = f"{setup.label} seed {setup.seed}"  # the task runs' names: which block, on which seed
        announce(self.heartbeat, events.TrainingStarted(exp, label, setup.baseline, state.best_val_bpb, state.counts))
        deadline, silence = training_limits(self.cfg["budget"])
        eval_silence = float(self.cfg["budget"]["grace_seconds"]) * 2
        return self.steps.train_and_evaluate(
            replace(setup, label=label), deadline, silence, eval_silence,
            lambda: announce(self.heartbeat, events.EvaluationStarted(exp, label, state.best_val_bpb, state.counts)))

    def judge_and_record(self, setup: ExperimentSetup, outcome: Outcome, state: RunState | None = None,
                         selected_from: int = 1, winner: int | None = None) -> dict:
        """The verdict of research.judging (training more pairs while it asks for them), recorded; the row. A
        parallel round passes the state at decision time, its size, and the winner for every other member."""
        state = state or setup.state
        decision, trained = self.judge(setup, outcome, state, selected_from, winner)
        facts = ExperimentFacts(setup.exp, state, setup.proposal, outcome.metrics, outcome.evaluation,
                                setup.commit_sha, setup.seed, setup.started,
                                setup.fit.ledger_fields() if setup.fit else None)
        row = self.steps.record(self.run_dir, self.cfg["tag"], facts, decision, trained, self.run_info)
        # The ledger after this row: the view's and the heartbeat's best, keeps and crashes are the ledger's.
        announce(self.heartbeat, events.verdict_of(setup.exp, decision, row.get("change"),
                                                   Ledger(RunLayout(self.run_dir).results).rows()))
        self.steps.after_record(self.run_dir, self.cfg["tag"])
        return row

    def judge(self, setup: ExperimentSetup, outcome: Outcome, state: RunState, selected_from: int = 1,
              winner: int | None = None) -> tuple[Decision, Trained]:
        """(verdict, the runs it read): a skip, a crash (after the first run's one retry where the failure may not
        repeat), a baseline, a round's loser, or a candidate settled by paired runs."""
        error = failure_reason(setup.proposal, outcome.metrics, outcome.evaluation)
        if setup.fit is not None and setup.fit.status == "skip":
            error = setup.fit.note
        if error is None and not setup.skipped and finite_or_none((outcome.evaluation or {}).get("val_bpb")) is None:
            error = f"the evaluation gave no finite val_bpb ({(outcome.evaluation or {}).get('val_bpb')})"
        kind = self.space.kind_of(setup.change_key)
        if setup.skipped:
            return judge_failure(state.rows, "skip", error), Trained({})
        if error is not None and self._retries_first_run(setup, outcome, selected_from):
            decision, trained = settle(self, setup, self._trained_hparams(setup), None, state.rows, kind=kind,
                                       first_failure=error)
            if not trained.candidate:  # the retry failed too: a crash, which max_consecutive_crashes counts
                decision = judge_failure(state.rows, "crash", f"{error}; {decision.error or decision.reason}")
            return decision, trained
        if error is not None:
            return judge_failure(state.rows, "crash", error), Trained({})
        value, speed = float(outcome.evaluation["val_bpb"]), outcome.machine_speed
        first = Trained({setup.seed: value}, {}, {setup.seed: speed} if speed else {})
        if setup.baseline:
            return judge_baseline(state.rows, setup.seed, value), first
        if selected_from > 1 and setup.exp != winner:
            return round_loser(state.rows, first.candidate, winner), first
        return settle(self, setup, self._trained_hparams(setup), value, state.rows, selected_from, speed, kind)

    def _trained_hparams(self, setup: ExperimentSetup) -> dict:
        """The block its first run trained, as config.json holds it (device_batch_size lowered if it had to be)."""
        return json.loads(ExperimentDir(setup.directory).config.read_text())["hparams"]

    def _retries_first_run(self, setup: ExperimentSetup, outcome: Outcome, selected_from: int) -> bool:
        """A candidate's first run that failed for a reason that may not repeat gets one more try on another seed
        (decide.paired_crash_retries); a baseline, a round's member, and a failure that would repeat do not."""
        return (not setup.baseline and selected_from == 1 and outcome.metrics is not None
                and int(self.cfg["decide"].get("paired_crash_retries", 1)) > 0 and not outcome.repeats)

    def _propose(self, exp: int, state: RunState, directory: Path, in_flight: list) -> ProposalRecord:
        cfg = self.cfg
        announce(self.heartbeat, events.ProposalRequested(exp, state.best_val_bpb, state.counts))
        context = ProposalContext(
            hparams=state.hparams, space=self.space, history=state.rows, best_val_bpb=state.best_val_bpb,
            baseline_val_bpb=state.baseline_val_bpb, noise_sigma=state.sigma, tried=state.tried,
            in_flight=list(in_flight),
            hardware=describe_hardware(cfg, state.rows),
            budget=describe_budget(cfg["budget"]),
            seq_len=int(cfg["train"]["seq_len"]), seed=int(cfg["hparams"]["seed"]) + exp,
            base_sha=state.base_sha,
            keep_margin=keep_margin(state.rows, cfg["decide"]),
            fit=(self.fit_check.with_speed(measured_flops_per_second(state.rows, self.peak_flops))
                 if self.fit_check else None),
        )
        cache_key = f"{self.run_id}-exp{exp}-{state.base_sha}-{config_hash(state.hparams)}-propose"
        if in_flight:  # the same block with other changes in flight is another question to the proposer
            cache_key += "-" + config_hash(sorted(str(item) for item in in_flight))
        return self.steps.propose(exp, directory, cfg["proposer"], context, cache_key)
