"""What happens in a research run, as typed events, and the one point where they are published.

The terminal view (cli/live_view.py) reads these events, the heartbeat is written from them (experiment/announce.py),
and the Prefect verdict line is worded by the same `Verdict` (tasks/run_log.py), so the three cannot tell
different stories. No Prefect here: the events are plain
frozen dataclasses, and listeners are registered per process (`subscribe`). Publishing with no listener is one
empty loop, so the loop emits unconditionally; `listening()` lets a caller skip building an event that costs
something (a parsed log line).
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from research.records.ledger import status_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStarted:
    tag: str
    device: str                       # the backend and device name, e.g. "cpu (x86_64, 2 cores)"
    preset: str
    dataset: str
    data_version: str
    proposer: str
    budget: str                       # "60 s" or "50 steps" per training
    planned: int                      # experiments the run will hold, baselines included
    recorded: int = 0                 # already in the ledger (a resumed run)
    estimate_seconds: float | None = None  # for the experiments left; None when nothing lets us guess


@dataclass(frozen=True)
class RunPreparing:
    tag: str
    dataset: str


@dataclass(frozen=True)
class ProposalRequested:
    exp: int
    best_val_bpb: float | None = None
    counts: dict = field(default_factory=dict)  # the ledger's statuses so far


@dataclass(frozen=True)
class ExperimentStarted:
    exp: int
    change: str | None                # "key=value"; None for a baseline
    reasoning: str = ""               # the first line of the proposer's reasoning
    seed: int | None = None

    @property
    def baseline(self) -> bool:
        return self.change is None


@dataclass(frozen=True)
class TrainingStarted:
    exp: int
    run: str                          # the block and its seed, as the task runs are named
    baseline: bool = False
    best_val_bpb: float | None = None
    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RoundStarted:
    """A parallel round's members train at once (each also publishes its own TrainingStarted)."""

    first: int
    runs: tuple                       # the members' changes
    members: int
    best_val_bpb: float | None = None
    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationStarted:
    exp: int
    run: str
    best_val_bpb: float | None = None
    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingProgress:
    exp: int
    run: str                          # which training of the experiment: its label (extra paired runs say their seed)
    step: int
    fraction: float                   # of the budget used, 0..1
    budget: str                       # the training's own words for its budget, "60 s" or "50 steps"
    loss: float | None = None
    tokens_per_second: float | None = None
    elapsed: float | None = None      # training seconds so far


@dataclass(frozen=True)
class EvaluationProgress:
    exp: int
    run: str
    scored: int                       # validation tokens scored so far
    wanted: int
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.scored / self.wanted) if self.wanted else 0.0


class LedgerTally:
    """keeps, crashes and recorded, read from an event's `counts` (the ledger's statuses) so they cannot disagree."""

    counts: dict

    @property
    def keeps(self) -> int:
        return self.counts.get("keep", 0)

    @property
    def crashes(self) -> int:
        return self.counts.get("crash", 0)

    @property
    def recorded(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Verdict(LedgerTally):
    """What research.judging.verdict decided for one experiment, as recorded. `Keep` and `Crash` are its two kinds that a
    reader often wants apart; every decided experiment publishes exactly one Verdict (or subclass)."""

    exp: int
    status: str                       # baseline | keep | discard | crash | skip
    reason: str                       # the rule's own sentence
    change: str | None = None
    val_bpb: float | None = None
    paired_delta: float | None = None  # candidate - incumbent on the same seeds (negative = better)
    paired_se: float | None = None
    best_val_bpb: float | None = None  # the incumbent's after this decision
    counts: dict = field(default_factory=dict)  # the ledger's statuses after this decision

    @property
    def gain(self) -> float | None:
        """Paired gain, positive = better (incumbent - candidate): the sign a reader expects of a gain."""
        return None if self.paired_delta is None else -self.paired_delta

    def words(self) -> str:
        """`STATUS: reason`: the Prefect log's verdict line and the terminal's, one wording."""
        return f"{self.status.upper()}: {self.reason}"


@dataclass(frozen=True)
class Keep(Verdict):
    pass


@dataclass(frozen=True)
class Crash(Verdict):
    """A crash (training, evaluation) or a skip (no valid proposal): the reason says which."""


@dataclass(frozen=True)
class RunFinished(LedgerTally):
    tag: str
    outcome: str                      # "done", or why it stopped
    best_val_bpb: float | None
    phase: str = "done"               # done | stopped: how the heartbeat ends
    counts: dict = field(default_factory=dict)  # the ledger's statuses at the end


@dataclass(frozen=True)
class RunAborted:
    """The run ended without finishing: a proposer that cannot go on (failed), Ctrl-C or SIGTERM (stopped). The
    command line says why in its own sentence, so the views print nothing for it; the heartbeat records it."""

    tag: str
    phase: str                        # failed | stopped
    message: str


Event = (RunPreparing | RunStarted | ProposalRequested | ExperimentStarted | TrainingStarted | RoundStarted
         | TrainingProgress | EvaluationStarted | EvaluationProgress | Verdict | RunFinished | RunAborted)

_VERDICT_KINDS = {"keep": Keep, "crash": Crash, "skip": Crash}


def verdict_of(exp: int, decision, change: str | None = None, rows: list[dict] | None = None) -> Verdict:
    """The Verdict of a research.judging.verdict.Decision; `rows`: the ledger after the decision (for the footer counts)."""
    kind = _VERDICT_KINDS.get(decision.status, Verdict)
    return kind(exp=exp, status=decision.status, reason=decision.reason, change=change,
                val_bpb=decision.val_bpb, paired_delta=decision.paired_delta, paired_se=decision.paired_se,
                best_val_bpb=decision.best_val_bpb, counts=status_counts(rows or []))


# A tuple replaced whole on (un)subscribe: publishing from several threads (a parallel round's trainings) reads
# it without a lock, and an empty tuple makes publishing free.
_listeners: tuple[Callable[[object], None], ...] = ()
_lock = threading.Lock()


def subscribe(listener: Callable[[object], None]) -> Callable[[], None]:
    """Register `listener` for every event published in this process; returns the function that removes it."""
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)

    def unsubscribe() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(item for item in _listeners if item is not listener)

    return unsubscribe


@contextmanager
def subscribed(listener: Callable[[object], None]) -> Iterator[None]:
    unsubscribe = subscribe(listener)
    try:
        yield
    finally:
        unsubscribe()


def listening() -> bool:
    return bool(_listeners)


def publish(event) -> None:
    """Hand `event` to every listener. A listener that fails is logged, never raised: a view must not stop a run."""
    for listener in _listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001
            log.warning("An event listener failed on %s.", type(event).__name__, exc_info=True)
