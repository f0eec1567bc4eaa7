"""The research flow: prepare -> baselines -> (propose -> train -> evaluate -> decide) until the run holds
`research.max_experiments` rows or a stop condition.

Everything the loop needs to resume is on disk (ledger, run repository, experiment folders), so running
the same tag again after a crash, kill -9 included, derives the same state and goes on; Prefect's cached
task results make the re-used steps visible as Cached in the UI.
"""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from prefect import flow
from prefect.exceptions import TerminationSignal

from flows.compose import CONF_DIR, compose, resolve_path, run_layout
from experiment.rounds import clear_round, open_round, run_round, start_round
from experiment.paired import settle
from flows.train_evaluate import train_then_evaluate
from hardware import detect, get_adapter
from experiment import events
from research.judging.verdict import (Trained, check_baseline, check_stop, failure_repeats, finite_or_none, first_seed,
                             judge_baseline, judge_failure, keep_margin, round_loser)
from research.errors import ProposerFatal, ResearchStopped
from research.records.heartbeat import Heartbeat
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from experiment.run_events import experiment_started, run_finished, run_started
from research.proposing.proposal_record import ProposalRecord
from research.proposing.proposers.base import ProposalContext
from research.records.runlock import RunLock
from research.records.runrepo import RunRepo
from research.records.run_settings import save_run_settings
from research.proposing.space import apply_change, load_space
from research.records.state import derive_state, hparams_yaml
from tasks.record import ExperimentFacts, decide_task, failure_reason, reconcile_main, write_run_report
from tasks.artifacts import publish_progress_plot
from tasks.gpu_slots import check_parallel_fits, resolve_slots
from tasks.prepare import prepare_task
from tasks.propose import propose_task
from tasks.run_log import send_logs_now
from training.fit import Fit, FitCheck, device_facts, measured_flops_per_second
from training.run_config import (ExperimentDir, code_version, config_hash, training_config, vocab_size,
                                 write_training_config)


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


def ensure_run_id(run_dir: Path) -> str:
    """A random id per run folder: part of every cache key, so a deleted and re-created run starts clean."""
    path = RunLayout(run_dir).run_id
    if not path.is_file():
        from common.atomic import atomic_write_text

        atomic_write_text(path, uuid.uuid4().hex[:12] + "\n")
    return path.read_text().strip()


def describe_hardware(cfg: dict, rows: list[dict]) -> str:
    """The hardware line the proposer reads: preset, and the device the last training actually ran on."""
    ran = [row for row in rows if row.get("device_name")]
    device = f"{ran[-1]['backend']} ({ran[-1]['device_name']})" if ran else f"backend {cfg.get('backend', 'auto')}"
    return f"{device}, preset {cfg.get('preset') or 'custom'}"


def overrides_from_parameters(overrides, tag, dataset, max_experiments, proposer) -> list[str]:
    items = list(overrides or [])
    for key, value in (("tag", tag), ("dataset", dataset), ("research.max_experiments", max_experiments),
                       ("proposer", proposer)):
        if value not in (None, ""):
            items.append(f"{key}={value}")
    return items


def run_name_from(parameters: dict) -> str:
    """`research-<tag>` (or the dataset), from the parameters or, as `autoresearch run tag=x` passes them, the
    overrides; the UI lists runs by this name."""
    found = {key: parameters.get(key) for key in ("tag", "dataset")}
    for item in parameters.get("overrides") or []:
        key, _, value = str(item).partition("=")
        if key in found and not found[key]:
            found[key] = value
    return f"research-{found['tag'] or found['dataset'] or 'default'}"


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return run_name_from(flow_run.parameters)


@flow(name="research", flow_run_name=_flow_run_name, log_prints=True)
def research_flow(overrides: list[str] | None = None, tag: str | None = None, dataset: str | None = None,
                  max_experiments: int | None = None, proposer: str | None = None) -> dict:
    """One research run. Parameters editable from the UI; `overrides` takes any Hydra `key=value`."""
    try:
        cfg = compose(overrides_from_parameters(overrides, tag, dataset, max_experiments, proposer))
        return run_research(cfg)
    finally:
        send_logs_now()


def run_research(cfg: dict) -> dict:
    tag = cfg["tag"]
    layout = run_layout(cfg, tag)
    run_dir = layout.root
    run_dir.mkdir(parents=True, exist_ok=True)
    heartbeat = Heartbeat(layout.heartbeat, tag)
    with RunLock(run_dir, tag):
        save_run_settings(layout.settings, cfg)  # read later by the report's keep line and by status
        try:
            _loop(cfg, run_dir, heartbeat)
        except ResearchStopped as exc:
            heartbeat.beat("stopped", message=str(exc))
            events.publish(run_finished(tag, f"stopped: {exc}", Ledger(layout.results).rows()))
            write_run_report(run_dir)
            raise
        except ProposerFatal as exc:
            heartbeat.beat("failed", message=str(exc))
            raise
        except (KeyboardInterrupt, TerminationSignal):  # Ctrl-C, or SIGTERM (Prefect turns it into TerminationSignal)
            heartbeat.beat("stopped", message="interrupted")
            raise
        report, plot = write_run_report(run_dir)
        rows = Ledger(layout.results).rows()
        best = [row["best_val_bpb"] for row in rows if row.get("best_val_bpb") is not None]
        counts = dict(Counter(row["status"] for row in rows))
        heartbeat.beat("done", best=best[-1] if best else None, counts=counts, message=f"{len(rows)} experiments recorded")
        events.publish(run_finished(tag, "done", rows))
    return {"run_dir": str(run_dir), "report": str(report), "plot": str(plot), "rows": len(rows),
            "best_val_bpb": best[-1] if best else None}


def _loop(cfg: dict, run_dir: Path, heartbeat: Heartbeat) -> None:
    heartbeat.beat("preparing", message=f"dataset {cfg['dataset']['name']}")
    data = prepare_task(cfg["dataset"]["name"], str(resolve_path(cfg["paths"]["data_dir"])))
    run_id = ensure_run_id(run_dir)
    space = load_space(CONF_DIR / "space.yaml")
    layout = RunLayout(run_dir)
    repo = RunRepo(layout.repo)
    repo.init(hparams_yaml(cfg["hparams"]))
    ledger = Ledger(layout.results)
    reconcile_main(str(run_dir))
    repo.prune_orphans(ledger.exps(), keep_from=ledger.next_exp())
    run_info = {"dataset": cfg["dataset"]["name"], "data_version": data["data_version"],
                "code_version": code_version(), "proposer": cfg["proposer"]["name"]}
    runner = ExperimentRunner(cfg, run_dir, run_id, repo, space, data, run_info, heartbeat)
    events.publish(run_started(cfg, data["data_version"], ledger.rows(), detect(cfg.get("backend") or "auto")))
    max_experiments = int(cfg["research"]["max_experiments"])
    parallel = max(1, int(cfg["research"].get("parallel") or 1))
    while True:
        rows = ledger.rows()
        if len(rows) >= max_experiments:
            clear_round(run_dir)
            return
        check_baseline(rows)
        stop = check_stop(rows, int(cfg["decide"]["max_consecutive_crashes"]))
        if stop:
            raise ResearchStopped(stop)
        exp = ledger.next_exp()
        # A round cut short by a crash is finished as that round (same members, same starting point), even
        # if the run is resumed with another research.parallel.
        pending = open_round(run_dir, exp)
        if pending is not None:
            first, members = pending
            members = [m for m in members if m < max_experiments]
            start = derive_state([row for row in rows if row["exp"] < first], repo, cfg["hparams"], space)
            run_round(runner, ledger, first, members, start)
        elif parallel == 1:
            runner.run(exp, derive_state(rows, repo, cfg["hparams"], space))
        else:
            baselines_left = max(0, int(cfg["decide"]["baseline_repeats"]) - exp)
            size = min(parallel, max_experiments - len(rows), baselines_left or parallel)
            members = list(range(exp, exp + size))
            start = derive_state(rows, repo, cfg["hparams"], space)
            start_round(run_dir, exp, members)
            run_round(runner, ledger, exp, members, start)


class ExperimentRunner:
    """One experiment end to end: its proposal (or a baseline seed), commit, training, evaluation, decision.

    `run` does the three steps in turn (research.parallel=1); a parallel round (experiment/rounds.py) prepares
    and decides its members one by one and executes them at once.
    """

    def __init__(self, cfg, run_dir, run_id, repo, space, data, run_info, heartbeat):
        self.cfg, self.run_dir, self.run_id, self.repo, self.space = cfg, run_dir, run_id, repo, space
        self.data, self.run_info, self.heartbeat = data, run_info, heartbeat
        self.slots = resolve_slots(cfg.get("slots"), detect(cfg.get("backend") or "auto"))
        self.pool_deployment = None
        if cfg["research"].get("executor", "local") == "pool":
            from flows.pool import ensure_pool_deployment

            self.pool_deployment = ensure_pool_deployment(cfg["research"]["pool"])
        else:  # the pool's workers hold their own hosts' devices; here, this machine's GPUs must fit the round
            check_parallel_fits(max(1, int(cfg["research"].get("parallel") or 1)), self.slots)
        self.fit_check, self.peak_flops = self._fit_check()

    def _fit_check(self) -> tuple[FitCheck | None, float | None]:
        """What training.fit needs to judge a block on this machine's device; None where the block trains
        elsewhere (a work pool's hosts) or with research.fit_check=false. research.fit_memory_gb=N judges
        against N GB instead of the device's memory (a device shared with other work; the tests)."""
        cfg = self.cfg
        if self.pool_deployment or not cfg["research"].get("fit_check", True):
            return None, None
        adapter = get_adapter(detect(cfg.get("backend") or "auto"))
        seq_len = int(cfg["train"]["seq_len"])
        facts = device_facts(adapter, cfg["train"].get("compile", "auto"), cfg["budget"]["kind"], seq_len,
                             embedding_dtype=cfg["train"].get("embedding_dtype") or "float32")
        if cfg["research"].get("fit_memory_gb"):  # research.fit_memory_gb=N: a device shared with other work
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

    def run(self, exp: int, state) -> dict:
        setup = self.set_up(exp, state)
        if setup.skipped:
            return self.decide(setup, None, None)
        metrics, evaluation = self.execute(setup)
        return self.decide(setup, metrics, evaluation)

    def set_up(self, exp: int, state, in_flight: list | None = None) -> "ExperimentSetup":
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
        events.publish(experiment_started(exp, proposal, seed))
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

    def execute(self, setup: "ExperimentSetup") -> tuple[dict, dict | None]:
        """Training, then evaluation if the training succeeded: here, or on the work pool."""
        cfg, state, exp = self.cfg, setup.state, setup.exp
        label = f"{setup.label} seed {setup.seed}"  # the task runs' names: which block, on which seed
        self.heartbeat.beat("baseline" if setup.baseline else "training", exp=exp, best=state.best_val_bpb,
                            counts=state.counts, message=label)
        train_deadline, train_silence = training_limits(cfg["budget"])
        eval_silence = float(cfg["budget"]["grace_seconds"]) * 2
        if self.pool_deployment:
            from flows.pool import run_on_pool

            return run_on_pool(self.pool_deployment, cfg["research"]["pool"], exp, str(setup.directory),
                               train_deadline, eval_silence, setup.key, label, cfg.get("slots"),
                               cfg.get("backend") or "auto", train_silence)
        return train_then_evaluate(
            exp, str(setup.directory), train_deadline, train_silence, eval_silence, setup.key, label, self.slots,
            lambda: self.heartbeat.beat("evaluating", exp=exp, best=state.best_val_bpb, counts=state.counts,
                                        message=label))

    def decide(self, setup: "ExperimentSetup", metrics, evaluation, state=None, selected_from: int = 1,
               winner: int | None = None) -> dict:
        """Ask research.judging.verdict for the verdict (training more pairs while it asks for them) and record it. A
        parallel round passes the state at decision time, its size, and the winner for every other member."""
        state = state or setup.state
        error = failure_reason(setup.proposal, metrics, evaluation)
        if setup.fit is not None and setup.fit.status == "skip":
            error = setup.fit.note
        if error is None and not setup.skipped and finite_or_none((evaluation or {}).get("val_bpb")) is None:
            error = f"the evaluation gave no finite val_bpb ({(evaluation or {}).get('val_bpb')})"
        trained = Trained({})
        kind = self.space.kind_of(setup.proposal.change.key if setup.proposal and setup.proposal.ok else None)
        if setup.skipped:
            decision = judge_failure(state.rows, "skip", error)
        elif error is not None and self._retries_first_run(setup, metrics, evaluation, selected_from):
            hparams = json.loads(ExperimentDir(setup.directory).config.read_text())["hparams"]
            decision, trained = settle(self, setup, hparams, None, state.rows, kind=kind, first_failure=error)
            if not trained.candidate:  # the retry failed too: a crash, which max_consecutive_crashes counts
                decision = judge_failure(state.rows, "crash", f"{error}; {decision.error or decision.reason}")
        elif error is not None:
            decision = judge_failure(state.rows, "crash", error)
        else:
            value, speed = float(evaluation["val_bpb"]), finite_or_none((metrics or {}).get("machine_speed"))
            trained = Trained({setup.seed: value}, {}, {setup.seed: speed} if speed else {})
            if setup.baseline:
                decision = judge_baseline(state.rows, setup.seed, value)
            elif selected_from > 1 and setup.exp != winner:
                decision = round_loser(state.rows, trained.candidate, winner)
            else:
                hparams = json.loads(ExperimentDir(setup.directory).config.read_text())["hparams"]
                decision, trained = settle(self, setup, hparams, value, state.rows, selected_from, speed, kind)
        facts = ExperimentFacts(setup.exp, state, setup.proposal, metrics, evaluation, setup.commit_sha,
                                setup.seed, setup.started, setup.fit.ledger_fields() if setup.fit else None)
        row = decide_task(str(self.run_dir), self.cfg["tag"], facts, decision, trained, self.run_info)
        if events.listening():  # the ledger after this row: the view's best, keeps and crashes are the ledger's
            events.publish(events.verdict_of(setup.exp, decision, row.get("change"),
                                             Ledger(RunLayout(self.run_dir).results).rows()))
        publish_progress_plot(str(self.run_dir), self.cfg["tag"])
        return row

    def _retries_first_run(self, setup: "ExperimentSetup", metrics, evaluation, selected_from: int) -> bool:
        """A candidate's first run that failed for a reason that may not repeat gets one more try on another seed
        (decide.paired_crash_retries); a baseline, a round's member, and a failure that would repeat do not."""
        return (not setup.baseline and selected_from == 1 and metrics is not None
                and int(self.cfg["decide"].get("paired_crash_retries", 1)) > 0
                and not failure_repeats(metrics, evaluation))

    def _propose(self, exp: int, state, directory: Path, in_flight: list) -> ProposalRecord:
        cfg = self.cfg
        self.heartbeat.beat("proposing", exp=exp, best=state.best_val_bpb, counts=state.counts)
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
        return propose_task(exp, str(directory), cfg["proposer"], context, cache_key=cache_key)


@dataclass
class ExperimentSetup:
    """An experiment ready to train: what `decide` needs besides the training's outcome."""

    exp: int
    state: object          # RunState it started from
    directory: Path
    proposal: ProposalRecord | None  # None for a baseline
    commit_sha: str
    seed: int
    started: float
    baseline: bool
    label: str
    key: str               # cache key prefix of its train/evaluate tasks
    skipped: bool = False  # no valid change, or a block predicted not to fit: recorded as `skip`, nothing to train
    fit: Fit | None = None  # training.fit's verdict on what trains (None: no prediction made)
