"""The one way the research loop says what it is doing: `announce(heartbeat, event)` publishes the event to every
listener (the terminal view) and writes the heartbeat from that same event, so `autoresearch status` and the
view never disagree about the phase, the best or the counts.
"""
from __future__ import annotations

from experiment import events
from research.records.heartbeat import Heartbeat


def announce(heartbeat: Heartbeat, event) -> None:
    events.publish(event)
    beat = heartbeat_beat(event)
    if beat is not None:
        heartbeat.beat(beat.pop("phase"), **beat)


def heartbeat_beat(event) -> dict | None:
    """The heartbeat's record of `event` (Heartbeat.beat's arguments), or None for progress within a phase."""
    if isinstance(event, events.RunPreparing):
        return {"phase": "preparing", "message": f"dataset {event.dataset}"}
    if isinstance(event, events.ProposalRequested):
        return {"phase": "proposing", "exp": event.exp, "best": event.best_val_bpb, "counts": event.counts}
    if isinstance(event, events.TrainingStarted):
        return {"phase": "baseline" if event.baseline else "training", "exp": event.exp, "best": event.best_val_bpb,
                "counts": event.counts, "message": event.run}
    if isinstance(event, events.RoundStarted):
        return {"phase": "training", "exp": event.first, "best": event.best_val_bpb, "counts": event.counts,
                "message": f"round of {event.members}: " + ", ".join(event.runs)}
    if isinstance(event, events.EvaluationStarted):
        return {"phase": "evaluating", "exp": event.exp, "best": event.best_val_bpb, "counts": event.counts,
                "message": event.run}
    if isinstance(event, events.Verdict):
        return {"phase": "deciding", "exp": event.exp, "best": event.best_val_bpb, "counts": event.counts,
                "message": f"exp{event.exp} {event.status}" + (f": {event.change}" if event.change else "")}
    if isinstance(event, events.RunFinished):
        if event.phase == "done":
            return {"phase": "done", "best": event.best_val_bpb, "counts": event.counts,
                    "message": f"{event.recorded} experiments recorded"}
        return {"phase": event.phase, "message": event.outcome.removeprefix(f"{event.phase}: ")}
    if isinstance(event, events.RunAborted):
        return {"phase": event.phase, "message": event.message}
    return None
