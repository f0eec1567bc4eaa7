"""The lines a run writes to its Prefect logs (each flow and task run's Logs tab in the UI), one function each.

The console shows warnings only (flows/prefect_env.py); these INFO lines are for the dashboard: what was
proposed and why, and what the decision rule said about it. Plain strings, so tests read them without Prefect.
"""
from __future__ import annotations


def proposal_line(record: dict) -> str:
    """`record`: tasks/propose.py's proposal.json (an accepted change, or a skip with its reason)."""
    who = record.get("proposer") or "proposer"
    if record.get("status") != "ok":
        return f"{who} gave no valid change (skip): {record.get('reason') or 'no reason recorded'}"
    reasoning = " ".join(str(record.get("reasoning") or "").split())
    return (f"{who} proposes {record.get('text')}: {record.get('description') or ''}"
            + (f" | reasoning: {reasoning}" if reasoning else ""))


def verdict_line(exp: int, decision) -> str:
    """`decision`: research.decide.Decision; its reason is the sentence the rule wrote for this verdict."""
    return f"exp {exp}: {decision.status.upper()}: {decision.reason}"

