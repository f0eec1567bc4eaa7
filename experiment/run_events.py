"""The research loop's events built from what it already holds (config, proposal, decision, ledger rows), so that
flows/research.py publishes each with one line."""
from __future__ import annotations

from experiment import events
from research.records.ledger import status_counts
from research.reporting.run_estimate import budget_text, estimate_seconds


def run_started(cfg: dict, data_version: str, rows: list[dict], backend: str) -> events.RunStarted:
    planned = int(cfg["research"]["max_experiments"])
    ran_on = [row for row in rows if row.get("device_name")]
    device = f"{backend} ({ran_on[-1]['device_name']})" if ran_on else backend
    return events.RunStarted(
        tag=cfg["tag"], device=device, preset=cfg.get("preset") or "custom", dataset=cfg["dataset"]["name"],
        data_version=str(data_version), proposer=cfg["proposer"]["name"], budget=budget_text(cfg["budget"]),
        planned=planned, recorded=len(rows),
        estimate_seconds=estimate_seconds(cfg["budget"], rows, planned, int(cfg["decide"]["baseline_repeats"])))


def first_line(text: str | None) -> str:
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def experiment_started(exp: int, proposal, seed: int) -> events.ExperimentStarted:
    """`proposal`: the ProposalRecord of an accepted change, or None for a baseline."""
    if proposal is None:
        return events.ExperimentStarted(exp=exp, change=None, seed=seed)
    return events.ExperimentStarted(exp=exp, change=proposal.change.text, reasoning=first_line(proposal.change.reasoning),
                                    seed=seed)


def run_finished(tag: str, outcome: str, rows: list[dict], phase: str = "done") -> events.RunFinished:
    best = [row["best_val_bpb"] for row in rows if row.get("best_val_bpb") is not None]
    return events.RunFinished(tag=tag, outcome=outcome, best_val_bpb=best[-1] if best else None, phase=phase,
                              counts=status_counts(rows))
