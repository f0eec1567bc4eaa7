"""research.parallel=K: a round proposes K different single changes from the current best, trains them at
once (one device each, see tasks/gpu_slots.py), then decides them in experiment order.

Which member may be kept, and whether it is, is research.judging.verdict's judgement (judge_round, round_loser,
judge_candidate with the round's size): only the best first run may be kept, after paired runs that do not
count its lucky first one. Baseline repeats run as a round of their own, decided like in the sequential loop.

Crash safety: `round.json` in the run folder names the round (first experiment and members) until every
member has its row. A resumed run finishes that round from the same starting point: proposals, commits and
trainings are re-used from the experiment folders, and rows are still written in experiment order.
"""
from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from common.atomic import atomic_write_json
from experiment import events
from experiment.announce import announce
from experiment.outcome import Outcome
from research.judging.pairing import own_runs
from research.judging.verdict import judge_round
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from research.records.state import RunState, derive_state

if TYPE_CHECKING:  # the lifecycle is what a round drives; it imports this module's run_at_once
    from experiment.lifecycle import ExperimentLifecycle

def run_at_once(function, items: list, name: str) -> list:
    """[function(item) for item in items], all at once, each in a thread with a copy of this context so that the
    Prefect tasks inside are children of this flow run in the UI. One item runs here, in this thread."""
    if len(items) == 1:
        return [function(items[0])]
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix=name) as pool:
        futures = [pool.submit(contextvars.copy_context().run, function, item) for item in items]
        return [future.result() for future in futures]


def start_round(run_dir: Path, first: int, members: list[int]) -> None:
    atomic_write_json(RunLayout(run_dir).round, {"first": first, "members": members})


def clear_round(run_dir: Path) -> None:
    RunLayout(run_dir).round.unlink(missing_ok=True)


def open_round(run_dir: Path, next_exp: int) -> tuple[int, list[int]] | None:
    """(first, members) of a round that still has members without a row; None otherwise."""
    path = RunLayout(run_dir).round
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        first, members = int(info["first"]), [int(m) for m in info["members"]]
    except (ValueError, KeyError, TypeError):
        clear_round(run_dir)  # a damaged marker: the ledger alone still gives a consistent state
        return None
    if first <= next_exp <= max(members, default=-1):
        return first, members
    clear_round(run_dir)
    return None


def round_winner(outcomes: dict[int, Outcome]) -> int | None:
    """research.judging.verdict.judge_round over a round's outcomes: the first runs that finished."""
    return judge_round(first_runs(outcomes))


def first_runs(outcomes: dict[int, Outcome]) -> dict[int, float | None]:
    return {exp: (outcome.evaluation or {}).get("val_bpb") if outcome.trained else None
            for exp, outcome in outcomes.items()}


def run_round(life: ExperimentLifecycle, ledger: Ledger, first: int, members: list[int], start: RunState) -> list[dict]:
    """Set up the round's unrecorded members, train them at once, judge and record them in order."""
    recorded = {row["exp"]: row for row in ledger.rows()}
    setups, in_flight = [], []
    for exp in members:
        if exp in recorded:
            # Decided before a crash: it still competes for the round (its val_bpb is in the ledger).
            if recorded[exp].get("key"):
                in_flight.append({"key": recorded[exp]["key"], "value": recorded[exp].get("value")})
            continue
        item = life.set_up(exp, start, in_flight)
        setups.append(item)
        if item.proposal and item.proposal.ok:
            in_flight.append({"key": item.proposal.change.key, "value": item.proposal.change.value})

    to_run = [item for item in setups if not item.skipped]
    announce(life.heartbeat, events.RoundStarted(first, tuple(item.label for item in to_run), len(members),
                                                 start.best_val_bpb, start.counts))
    outcomes: dict[int, Outcome] = {item.exp: Outcome(None) for item in setups}
    if to_run:
        outcomes.update(zip((item.exp for item in to_run), run_at_once(life.execute, to_run, "experiment")))
    for exp, row in recorded.items():
        if exp in members:
            first_run = own_runs(row).get(row.get("seed"))  # its first run, as the other members' (not its mean)
            outcomes[exp] = Outcome({"status": "ok" if first_run is not None else "failed"},
                                    {"status": "ok", "val_bpb": first_run})
    scores = first_runs({exp: outcome for exp, outcome in outcomes.items() if exp in members})
    winner = judge_round(scores)
    finished = sum(value is not None for value in scores.values())  # how many first runs the winner beat

    rows = []
    for item in setups:
        current = derive_state(ledger.rows(), life.repo, life.cfg["hparams"], life.space)
        # Judged against the best as it stands now (a winner decided earlier in this round raised it), but
        # recorded as started from the round's commit, which it was.
        state = replace(start, rows=current.rows, best_val_bpb=current.best_val_bpb)
        rows.append(life.judge_and_record(item, outcomes[item.exp], state=state, selected_from=finished,
                                          winner=winner))
    clear_round(life.run_dir)
    return rows
