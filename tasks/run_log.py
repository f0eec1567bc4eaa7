"""The lines a run writes to its Prefect logs (each flow and task run's Logs tab in the UI), one function each.

The console shows warnings only (prefect_ops/prefect_env.py); these INFO lines are for the dashboard: what was
proposed and why, and what the decision rule said about it. Plain strings, so tests read them without Prefect.
"""
from __future__ import annotations


def proposal_line(record) -> str:
    """`record`: research.proposing.proposal_record.ProposalRecord (an accepted change, or a skip with its reason)."""
    who = record.proposer or "proposer"
    if not record.ok:
        return f"{who} gave no valid change (skip): {record.reason or 'no reason recorded'}"
    change = record.change
    reasoning = " ".join(str(change.reasoning or "").split())
    return (f"{who} proposes {change.text}: {change.description or ''}"
            + (f" | reasoning: {reasoning}" if reasoning else ""))


def verdict_line(exp: int, decision) -> str:
    """`decision`: research.judging.verdict.Decision; its reason is the sentence the rule wrote for this verdict. Worded by
    experiment.events.Verdict, as the terminal view words it, so the two never disagree."""
    from experiment.events import verdict_of

    return f"exp {exp}: {verdict_of(exp, decision).words()}"



def send_logs_now(timeout: float = 10.0) -> None:
    """Send the lines still queued for the Prefect server before the flow run reports its final state.

    Prefect ships logs in batches every 2 s and the rest when the process exits, so a run read as Completed
    could still lack its last lines (the verdicts, the report), and they were lost for good when the process
    was stopped in those seconds (`autoresearch serve` stopped right after a run). A no-op outside Prefect."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)  # the next line logged starts a new sender
