"""Decide task: record what research.decide decided (the row), move the run repository's main on a keep, beat
the heartbeat and refresh the Prefect artifacts. It judges nothing itself.

Order matters for crash safety: the ledger row is written first (the source of truth), then main moves.
A run killed in between is repaired on resume by `reconcile_main`, which sets main from the ledger.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import yaml
from prefect import task

from research.decide import Decision, decision_fields, noise_sigma
from research.heartbeat import Heartbeat
from research.layout import RunLayout
from research.ledger import Ledger
from research.report import results_table_markdown, write_report
from research.runrepo import RunRepo
from research.state import RunState
from tasks.artifacts import artifact_key


def build_row(exp: int, status: str, state: RunState, proposal: dict | None, metrics: dict, evaluation: dict,
              run_info: dict, commit_sha: str, seed: int, started_at: float, error: str | None) -> dict:
    proposal = proposal or {}
    num_params = metrics.get("num_params")
    return {
        "exp": exp,
        "description": proposal.get("description") or (f"baseline (seed {seed})" if status == "baseline" else ""),
        "val_bpb": evaluation.get("val_bpb"),
        "mfu": metrics.get("mfu_percent"),
        "status": status,
        "baseline_sha": state.base_sha,
        "change": proposal.get("text"),
        "key": proposal.get("key"),
        "value": proposal.get("canonical"),
        "previous": proposal.get("previous"),
        "steps": metrics.get("steps"),
        "tokens": metrics.get("tokens"),
        "tokens_per_second": metrics.get("tokens_per_second"),
        "peak_memory_gb": metrics.get("peak_memory_gb"),
        "num_params_M": None if num_params is None else num_params / 1e6,
        "train_seconds": metrics.get("training_seconds"),
        "total_seconds": time.time() - started_at,
        "backend": metrics.get("backend"),
        "device_name": metrics.get("device_name"),
        "dataset": run_info["dataset"],
        "data_version": run_info["data_version"],
        "code_version": run_info["code_version"],
        "seed": seed,
        "proposer": proposal.get("proposer") or (None if status == "baseline" else run_info.get("proposer")),
        "llm_model": proposal.get("model") or None,
        "llm_input_tokens": proposal.get("input_tokens"),
        "llm_output_tokens": proposal.get("output_tokens"),
        "llm_cost_usd": proposal.get("cost_usd"),
        "energy_kwh": metrics.get("energy_kwh"),
        "commit_sha": commit_sha,
        "reasoning": proposal.get("reasoning"),
        "error": error,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started_at)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def failure_reason(proposal: dict | None, metrics: dict | None, evaluation: dict | None) -> str | None:
    if proposal is not None and proposal.get("status") == "skip":
        return proposal.get("reason")
    if metrics is not None and metrics.get("status") != "ok":
        reason = metrics.get("reason", "training failed")
        tail = (metrics.get("log_tail") or "").strip().splitlines()[-3:]
        return reason + (" | " + " / ".join(tail) if tail and metrics.get("kind") in ("process", "error") else "")
    if evaluation is not None and evaluation.get("status") != "ok":
        return evaluation.get("reason", "evaluation failed")
    return None


def decide_experiment(run_dir: str, exp: int, state: RunState, proposal: dict | None, metrics: dict | None,
                      evaluation: dict | None, decision: Decision, runs: dict, incumbent_new: dict, run_info: dict,
                      commit_sha: str, seed: int, started_at: float) -> dict:
    """Record what research.decide decided for experiment `exp` (idempotent: an existing row is returned
    unchanged). `runs` and `incumbent_new`: val_bpb by seed of the experiment's config and of the incumbent's
    runs trained for this decision."""
    layout = RunLayout(run_dir)
    ledger = Ledger(layout.results)
    existing = ledger.get(exp)
    if existing is not None:
        return existing
    row = build_row(exp, decision.status, state, proposal, metrics or {}, evaluation or {}, run_info, commit_sha,
                    seed, started_at, decision.error)
    row.update(decision_fields(decision, runs, incumbent_new))
    ledger.record(row)
    if decision.keep:
        RunRepo(layout.repo).advance_main(commit_sha)
    rows = ledger.rows()
    Heartbeat(layout.heartbeat).beat(
        "deciding", exp=exp, best=decision.best_val_bpb, counts=dict(Counter(r["status"] for r in rows)),
        message=f"exp{exp} {decision.status}" + (f": {row['change']}" if row.get("change") else ""))
    return ledger.get(exp)  # as recorded, so a first call and a repeated one return the same thing


def reconcile_main(run_dir: str) -> None:
    """Point the run repository's main at the last kept experiment the ledger records (resume repair)."""
    layout = RunLayout(run_dir)
    rows = Ledger(layout.results).rows()
    keeps = [row for row in rows if row.get("status") == "keep" and row.get("commit_sha")]
    repo = RunRepo(layout.repo)
    target = keeps[-1]["commit_sha"] if keeps else repo.tag_sha(0)
    if target and repo.main_sha() != target:
        repo.advance_main(target)


def write_run_report(run_dir: Path) -> tuple[Path, Path]:
    """report.md and progress.png from what the run recorded (ledger + run repository)."""
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    rows = Ledger(layout.results).rows()
    repo = RunRepo(layout.repo)
    baseline = yaml.safe_load(repo.show(0)) if repo.exists() else {}
    keeps = [row for row in rows if row.get("status") == "keep"]
    best = yaml.safe_load(repo.show(keeps[-1]["exp"])) if keeps else baseline
    sigma = noise_sigma([row["val_bpb"] for row in rows if row.get("status") == "baseline"])
    verified = layout.verified  # written by `autoresearch finalize` (flows/finalize.py)
    return write_report(run_dir, rows, baseline, best, {"noise_sigma": sigma},
                        verified.read_text() if verified.is_file() else None)


def publish_artifacts(run_dir: str, tag: str, proposal: dict | None) -> None:
    """Prefect UI: the results table, the report and this proposal's reasoning (inside a flow run only)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = Ledger(RunLayout(run_dir).results).rows()
    columns = ("exp", "status", "val_bpb", "paired_delta", "paired_se", "paired_seeds", "change", "description",
               "verdict", "mfu", "error")
    table = [{k: row.get(k) for k in columns}
             for row in rows]
    create_table_artifact(key=artifact_key(tag, "results"), table=table, description=f"results.tsv of run {tag}")
    report_md, _ = write_run_report(Path(run_dir))
    create_markdown_artifact(key=artifact_key(tag, "report"), markdown=report_md.read_text(), description=f"report of run {tag}")
    if proposal and proposal.get("status") == "ok":
        create_markdown_artifact(
            markdown=f"### {proposal['text']}\n\n**{proposal.get('description', '')}**\n\n{proposal.get('reasoning', '')}",
            description="proposal")


@task(name="decide", task_run_name="exp-{exp} decide")
def decide_task(run_dir: str, exp: int, state: RunState, proposal: dict | None, metrics: dict | None,
                evaluation: dict | None, decision: Decision, runs: dict, incumbent_new: dict, run_info: dict,
                commit_sha: str, seed: int, started_at: float, tag: str) -> dict:
    row = decide_experiment(run_dir, exp, state, proposal, metrics, evaluation, decision, runs, incumbent_new,
                            run_info, commit_sha, seed, started_at)
    from prefect.logging import get_run_logger

    from tasks.run_log import verdict_line

    get_run_logger().info(verdict_line(exp, decision))  # the UI's Logs tab: the verdict and the rule's reason
    publish_artifacts(run_dir, tag, proposal)
    return row
