"""The research flow: prepare -> baselines -> experiments (experiment/lifecycle.py: propose -> train -> evaluate ->
judge -> record, each step a Prefect task through flows/steps.py) until the run holds `research.max_experiments`
rows or a stop condition.

Everything the loop needs to resume is on disk (ledger, run repository, experiment folders), so running
the same tag again after a crash, kill -9 included, derives the same state and goes on; Prefect's cached
task results make the re-used steps visible as Cached in the UI.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.exceptions import TerminationSignal

from experiment import events
from experiment.announce import announce
from experiment.lifecycle import ExperimentLifecycle, RunContext
from experiment.record import reconcile_main, write_run_report
from experiment.loop import run_experiments
from experiment.run_events import run_finished, run_started
from flows.compose import CONF_DIR, compose, resolve_path, run_layout
from flows.steps import PrefectSteps
from hardware import detect
from research.errors import ProposerFatal, ResearchStopped
from research.proposing.space import load_space
from research.records.heartbeat import Heartbeat
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from research.records.run_id import ensure_run_id
from research.records.run_settings import save_run_settings
from research.records.runlock import RunLock
from research.records.runrepo import RunRepo
from research.records.state import hparams_yaml
from tasks.prepare import prepare_task
from tasks.run_log import send_logs_now
from training.run_config import code_version


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
            announce(heartbeat, run_finished(tag, f"stopped: {exc}", Ledger(layout.results).rows(), "stopped"))
            write_run_report(run_dir)
            raise
        except ProposerFatal as exc:
            announce(heartbeat, events.RunAborted(tag, "failed", str(exc)))
            raise
        except (KeyboardInterrupt, TerminationSignal):  # Ctrl-C, or SIGTERM (Prefect turns it into TerminationSignal)
            announce(heartbeat, events.RunAborted(tag, "stopped", "interrupted"))
            raise
        report, plot = write_run_report(run_dir)
        rows = Ledger(layout.results).rows()
        best = [row["best_val_bpb"] for row in rows if row.get("best_val_bpb") is not None]
        announce(heartbeat, run_finished(tag, "done", rows))
    return {"run_dir": str(run_dir), "report": str(report), "plot": str(plot), "rows": len(rows),
            "best_val_bpb": best[-1] if best else None}


def _loop(cfg: dict, run_dir: Path, heartbeat: Heartbeat) -> None:
    announce(heartbeat, events.RunPreparing(cfg["tag"], cfg["dataset"]["name"]))
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
    life = ExperimentLifecycle(RunContext(cfg, run_dir, run_id, repo, space, data, run_info, heartbeat),
                               PrefectSteps(cfg))
    events.publish(run_started(cfg, data["data_version"], ledger.rows(), detect(cfg.get("backend") or "auto")))
    run_experiments(life, ledger)
