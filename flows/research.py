"""The research flow: prepare -> baselines -> (propose -> train -> evaluate -> decide) until the run holds
`research.max_experiments` rows or a stop condition.

Everything the loop needs to resume is on disk (ledger, run repository, experiment folders), so running
the same tag again after a crash, kill -9 included, derives the same state and goes on; Prefect's cached
task results make the re-used steps visible as Cached in the UI.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

from prefect import flow

from flows.compose import CONF_DIR, compose, resolve_path
from research.decide import check_baseline, check_stop, keep_threshold
from research.errors import ProposerFatal, ResearchStopped
from research.heartbeat import Heartbeat
from research.ledger import Ledger
from research.proposers.base import ProposalContext
from research.runlock import RunLock
from research.runrepo import RunRepo
from research.space import Change, apply_change, load_space
from research.state import derive_state, hparams_yaml
from tasks.decide import decide_task, reconcile_main, write_run_report
from tasks.evaluate import evaluate_task
from tasks.experiment import code_version, config_hash, exp_dir, training_config, write_training_config
from tasks.prepare import prepare_task
from tasks.propose import propose_task
from tasks.train import train_task

RUN_ID_FILE = "run_id"


def deadline_seconds(budget: dict) -> float:
    """How long a training may take before it is killed as hung: generous, never a second budget."""
    grace = float(budget["grace_seconds"])
    if budget["kind"] == "time":
        return float(budget["seconds"]) * float(budget["deadline_factor"]) + grace
    return grace * float(budget["deadline_factor"])


def ensure_run_id(run_dir: Path) -> str:
    """A random id per run folder: part of every cache key, so a deleted and re-created run starts clean."""
    path = run_dir / RUN_ID_FILE
    if not path.is_file():
        from data.atomic import atomic_write_text

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


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"research-{params.get('tag') or params.get('dataset') or 'default'}"


@flow(name="research", flow_run_name=_flow_run_name, log_prints=True)
def research_flow(overrides: list[str] | None = None, tag: str | None = None, dataset: str | None = None,
                  max_experiments: int | None = None, proposer: str | None = None) -> dict:
    """One research run. Parameters editable from the UI; `overrides` takes any Hydra `key=value`."""
    cfg = compose(overrides_from_parameters(overrides, tag, dataset, max_experiments, proposer))
    return run_research(cfg)


def run_research(cfg: dict) -> dict:
    tag = cfg["tag"]
    run_dir = resolve_path(cfg["paths"]["runs_dir"]) / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    heartbeat = Heartbeat(run_dir / "heartbeat.json", tag)
    with RunLock(run_dir, tag):
        try:
            _loop(cfg, run_dir, heartbeat)
        except ResearchStopped as exc:
            heartbeat.beat("stopped", message=str(exc))
            write_run_report(run_dir)
            raise
        except ProposerFatal as exc:
            heartbeat.beat("failed", message=str(exc))
            raise
        except KeyboardInterrupt:
            heartbeat.beat("stopped", message="interrupted")
            raise
        report, plot = write_run_report(run_dir)
        rows = Ledger(run_dir / "results.tsv").rows()
        best = [row["best_val_bpb"] for row in rows if row.get("best_val_bpb") is not None]
        counts = dict(Counter(row["status"] for row in rows))
        heartbeat.beat("done", best=best[-1] if best else None, counts=counts, message=f"{len(rows)} experiments recorded")
    return {"run_dir": str(run_dir), "report": str(report), "plot": str(plot), "rows": len(rows),
            "best_val_bpb": best[-1] if best else None}


def _loop(cfg: dict, run_dir: Path, heartbeat: Heartbeat) -> None:
    heartbeat.beat("preparing", message=f"dataset {cfg['dataset']['name']}")
    data = prepare_task(cfg["dataset"]["name"], str(resolve_path(cfg["paths"]["data_dir"])))
    run_id = ensure_run_id(run_dir)
    space = load_space(CONF_DIR / "space.yaml")
    repo = RunRepo(run_dir / "repo")
    repo.init(hparams_yaml(cfg["hparams"]))
    ledger = Ledger(run_dir / "results.tsv")
    reconcile_main(str(run_dir))
    repo.prune_orphans(ledger.exps(), keep_from=ledger.next_exp())
    run_info = {"dataset": cfg["dataset"]["name"], "data_version": data["data_version"],
                "code_version": code_version(), "proposer": cfg["proposer"]["name"]}
    runner = ExperimentRunner(cfg, run_dir, run_id, repo, space, data, run_info, heartbeat)
    while True:
        rows = ledger.rows()
        if len(rows) >= int(cfg["research"]["max_experiments"]):
            return
        check_baseline(rows)
        stop = check_stop(rows, int(cfg["decide"]["max_consecutive_crashes"]))
        if stop:
            raise ResearchStopped(stop)
        exp = ledger.next_exp()
        runner.run(exp, derive_state(rows, repo, cfg["hparams"], space))


class ExperimentRunner:
    """One experiment end to end: its proposal (or a baseline seed), commit, training, evaluation, decision."""

    def __init__(self, cfg, run_dir, run_id, repo, space, data, run_info, heartbeat):
        self.cfg, self.run_dir, self.run_id, self.repo, self.space = cfg, run_dir, run_id, repo, space
        self.data, self.run_info, self.heartbeat = data, run_info, heartbeat

    def run(self, exp: int, state) -> dict:
        cfg = self.cfg
        started = time.time()
        directory = exp_dir(self.run_dir, exp)
        directory.mkdir(parents=True, exist_ok=True)
        baseline = exp < int(cfg["decide"]["baseline_repeats"])
        proposal = None
        if baseline:
            seed = int(cfg["hparams"]["seed"]) + exp
            hparams = {**cfg["hparams"], "seed": seed}
            label, message = "baseline", f"exp{exp}: baseline seed={seed}"
        else:
            proposal = self._propose(exp, state, directory)
            if proposal["status"] != "ok":
                return self._decide(exp, state, proposal, None, None, "", int(state.hparams["seed"]), started, False)
            change = Change(proposal["key"], proposal["value"], proposal["override"], proposal["description"],
                            proposal["reasoning"], proposal.get("previous"))
            hparams = apply_change(state.hparams, change)
            seed = int(hparams["seed"])
            label, message = proposal["text"], f"exp{exp}: {proposal['text']} {proposal['description']}"
        if exp == 0:
            commit_sha = self.repo.tag_sha(0)
        else:
            commit_sha = self.repo.commit_experiment(exp, hparams_yaml(hparams), message, state.base_sha)
        run_cfg = training_config(cfg, hparams, seed, self.data, cfg.get("fault"))
        write_training_config(directory, run_cfg)
        key = f"{self.run_id}-exp{exp}-{config_hash(run_cfg)}-{self.run_info['code_version']}"
        self.heartbeat.beat("baseline" if baseline else "training", exp=exp, best=state.best_val_bpb,
                            counts=state.counts, message=label)
        metrics = train_task(exp, str(directory), deadline_seconds(cfg["budget"]), cache_key=f"{key}-train", label=label)
        evaluation = None
        if metrics.get("status") == "ok":
            self.heartbeat.beat("evaluating", exp=exp, best=state.best_val_bpb, counts=state.counts, message=label)
            evaluation = evaluate_task(exp, str(directory), float(cfg["budget"]["grace_seconds"]) * 2,
                                       cache_key=f"{key}-eval", label=label)
        return self._decide(exp, state, proposal, metrics, evaluation, commit_sha, seed, started, baseline)

    def _propose(self, exp: int, state, directory: Path) -> dict:
        cfg = self.cfg
        self.heartbeat.beat("proposing", exp=exp, best=state.best_val_bpb, counts=state.counts)
        context = ProposalContext(
            hparams=state.hparams, space=self.space, history=state.rows, best_val_bpb=state.best_val_bpb,
            baseline_val_bpb=state.baseline_val_bpb, noise_sigma=state.sigma, tried=state.tried,
            hardware=describe_hardware(cfg, state.rows),
            budget=f"{cfg['budget']['kind']} budget: " + (f"{cfg['budget']['seconds']} s" if cfg["budget"]["kind"] == "time"
                                                           else f"{cfg['budget']['steps']} steps"),
            seq_len=int(cfg["train"]["seq_len"]), seed=int(cfg["hparams"]["seed"]) + exp,
            base_sha=state.base_sha,
            keep_threshold=None if state.best_val_bpb is None else state.best_val_bpb - keep_threshold(
                state.best_val_bpb, state.sigma, cfg["decide"]["min_delta"], cfg["decide"]["sigma_k"]),
        )
        cache_key = f"{self.run_id}-exp{exp}-{state.base_sha}-{config_hash(state.hparams)}-propose"
        return propose_task(exp, str(directory), cfg["proposer"], context, cache_key=cache_key)

    def _decide(self, exp, state, proposal, metrics, evaluation, commit_sha, seed, started, baseline) -> dict:
        return decide_task(str(self.run_dir), exp, state, proposal, metrics, evaluation, self.cfg["decide"],
                           self.run_info, commit_sha, seed, started, baseline, self.cfg["tag"])
