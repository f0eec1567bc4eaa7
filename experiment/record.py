"""Recording an experiment: its ledger row from the facts and the verdict, main moved on a keep, the run's report.
It judges nothing itself (research/judging/ does); Prefect's record task (tasks/record.py) wraps it.

Order matters for crash safety: the ledger row is written first (the source of truth), then main moves.
A run killed in between is repaired on resume by `reconcile_main`, which sets main from the ledger.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from research.judging.verdict import Decision, Trained, decision_fields, noise_sigma
from research.proposing.proposal_record import ProposalRecord
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from research.records.runrepo import RunRepo
from research.records.state import RunState
from research.reporting.report import write_report


@dataclass(frozen=True)
class ExperimentFacts:
    """One experiment as its ledger row records it, apart from the verdict: where it started and what it gave."""

    exp: int
    state: RunState                   # the run's state the experiment started from
    proposal: ProposalRecord | None   # None for a baseline
    metrics: dict | None              # the training's metrics.json (None when it never ran)
    evaluation: dict | None           # the evaluation's eval.json (None when it never ran)
    commit_sha: str                   # its commit in the run repository
    seed: int
    started_at: float                 # time.time() when it was prepared
    fit: dict | None = None           # training.fit's prediction and verdict (Fit.ledger_fields), None when not made


def build_row(facts: ExperimentFacts, status: str, run_info: dict, error: str | None) -> dict:
    change = facts.proposal.change if facts.proposal is not None else None
    usage = facts.proposal.usage if facts.proposal is not None else {}
    metrics, evaluation, seed = facts.metrics or {}, facts.evaluation or {}, facts.seed
    num_params = metrics.get("num_params")
    return {
        "exp": facts.exp,
        "description": change.description if change else (f"baseline (seed {seed})" if status == "baseline" else ""),
        "val_bpb": evaluation.get("val_bpb"),
        "mfu": metrics.get("mfu_percent"),
        "status": status,
        "baseline_sha": facts.state.base_sha,
        "change": change.text if change else None,
        "key": change.key if change else None,
        "value": change.canonical if change else None,
        "previous": change.previous if change else None,
        "steps": metrics.get("steps"),
        "tokens": metrics.get("tokens"),
        "tokens_per_second": metrics.get("tokens_per_second"),
        "peak_memory_gb": metrics.get("peak_memory_gb"),
        "measured_peak_gb": metrics.get("peak_tensor_gb"),
        **(facts.fit or {}),
        "num_params_M": None if num_params is None else num_params / 1e6,
        "train_seconds": metrics.get("training_seconds"),
        "total_seconds": time.time() - facts.started_at,
        "backend": metrics.get("backend"),
        "device_name": metrics.get("device_name"),
        "dataset": run_info["dataset"],
        "data_version": run_info["data_version"],
        "code_version": run_info["code_version"],
        "seed": seed,
        "proposer": (facts.proposal.proposer if facts.proposal else None) or (
            None if status == "baseline" else run_info.get("proposer")),
        "llm_model": (facts.proposal.model if facts.proposal else None) or None,
        "llm_input_tokens": usage.get("input_tokens"),
        "llm_output_tokens": usage.get("output_tokens"),
        "llm_cost_usd": usage.get("cost_usd"),
        "energy_kwh": metrics.get("energy_kwh"),
        "commit_sha": facts.commit_sha,
        "reasoning": change.reasoning if change else None,
        "error": error,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(facts.started_at)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def failure_reason(proposal: ProposalRecord | None, metrics: dict | None, evaluation: dict | None) -> str | None:
    if proposal is not None and not proposal.ok:
        return proposal.reason
    if metrics is not None and metrics.get("status") != "ok":
        reason = metrics.get("reason", "training failed")
        tail = (metrics.get("log_tail") or "").strip().splitlines()[-3:]
        return reason + (" | " + " / ".join(tail) if tail and metrics.get("kind") in ("process", "error") else "")
    if evaluation is not None and evaluation.get("status") != "ok":
        return evaluation.get("reason", "evaluation failed")
    return None


def record_experiment(run_dir: str, facts: ExperimentFacts, decision: Decision, trained: Trained,
                      run_info: dict) -> dict:
    """Record what research.judging.verdict decided for the experiment (idempotent: an existing row is returned
    unchanged). `trained`: the runs of the experiment's config and of the incumbent made for this decision."""
    layout = RunLayout(run_dir)
    ledger = Ledger(layout.results)
    existing = ledger.get(facts.exp)
    if existing is not None:
        return existing
    row = build_row(facts, decision.status, run_info, decision.error)
    row.update(decision_fields(decision, trained))
    ledger.record(row)
    if decision.keep:
        RunRepo(layout.repo).advance_main(facts.commit_sha)
    return ledger.get(facts.exp)  # as recorded, so a first call and a repeated one return the same thing


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
