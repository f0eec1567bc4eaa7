"""experiment.announce: the heartbeat is written from the same event the views receive, so `autoresearch status` and
the terminal view cannot disagree; and nothing else in the product writes the heartbeat."""
from __future__ import annotations

import re

import pytest

from experiment import events
from experiment.announce import announce
from research.records.heartbeat import PHASES, Heartbeat, read_heartbeat
from tests.project_packages import ROOT, package_files

COUNTS = {"baseline": 2, "keep": 1, "discard": 3}
EVENTS = [
    (events.RunPreparing("t", "bundled"), "preparing", None, None, None, "dataset bundled"),
    (events.ProposalRequested(5, 0.98, COUNTS), "proposing", 5, 0.98, COUNTS, ""),
    (events.TrainingStarted(5, "optim.matrix_lr=0.05 seed 43", False, 0.98, COUNTS), "training", 5, 0.98, COUNTS,
     "optim.matrix_lr=0.05 seed 43"),
    (events.TrainingStarted(1, "baseline seed 43", True, 1.0, {"baseline": 1}), "baseline", 1, 1.0, {"baseline": 1},
     "baseline seed 43"),
    (events.RoundStarted(6, ("a=1", "b=2"), 3, 0.97, COUNTS), "training", 6, 0.97, COUNTS, "round of 3: a=1, b=2"),
    (events.EvaluationStarted(5, "a=1 seed 42", 0.98, COUNTS), "evaluating", 5, 0.98, COUNTS, "a=1 seed 42"),
    (events.Keep(5, "keep", "gain", change="a=1", best_val_bpb=0.97, counts={**COUNTS, "keep": 2}), "deciding", 5, 0.97,
     {**COUNTS, "keep": 2}, "exp5 keep: a=1"),
    (events.RunFinished("t", "done", 0.97, counts=COUNTS), "done", None, 0.97, COUNTS, "6 experiments recorded"),
    (events.RunFinished("t", "stopped: 3 crashes in a row", 0.97, phase="stopped", counts=COUNTS), "stopped",
     None, None, None, "3 crashes in a row"),
    (events.RunAborted("t", "failed", "the API key was refused"), "failed", None, None, None, "the API key was refused"),
]


@pytest.mark.parametrize("event,phase,exp,best,counts,message", EVENTS, ids=[f"{type(e[0]).__name__}-{e[1]}"
                                                                            for e in EVENTS])
def test_the_heartbeat_records_what_the_view_receives(tmp_path, event, phase, exp, best, counts, message):
    received = []
    heartbeat = Heartbeat(tmp_path / "heartbeat.json", "t")
    with events.subscribed(received.append):
        announce(heartbeat, event)
    beat = read_heartbeat(tmp_path)
    assert received == [event]
    assert (beat["phase"], beat["experiment"], beat["best_val_bpb"], beat["counts"], beat["message"]) == (
        phase, exp, best, counts or {}, message)


def test_every_phase_has_its_event():
    assert {case[1] for case in EVENTS} == set(PHASES)


def test_nothing_but_announce_writes_the_heartbeat():
    """A phase written around the events could disagree with the view: every `.beat(` call is announce's."""
    calls = [f"{path.relative_to(ROOT)}:{number}" for path in package_files()
             for number, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\.beat\(", line)]
    assert calls == ["experiment/announce.py:15"]
