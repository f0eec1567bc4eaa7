"""The loop of a paired decision, with no Prefect and no training in it: ask research.judging.verdict for a verdict, train
the runs it asks for (through a `train` callable), repeat. experiment/paired.py trains real runs with it;
bench/decide_sim.py the runs of a simulated world, so the simulator measures the loop the product runs.

With K runs at once (K devices), the runs the verdict would ask for next are trained K at a time: the pair's
incumbent and candidate runs together, then the following pairs' runs while devices are free, up to the pairs
max_pairs still allows. The verdict still reads them one pair at a time in seed order and stops where the
one-at-a-time loop would, so it is the same verdict; runs trained past that point are the price of not waiting
on idle devices.

A paired run that fails for a reason that may not repeat (a killed process, a hang, a NaN on one seed) costs the
decision that seed, not the candidate: the pair is asked for once more on the next seed
(decide.paired_crash_retries). A failure that would repeat (an invalid block, out of memory) ends it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from research.judging.verdict import CONTINUE, Decision, Trained, judge_candidate
from research.judging.pairing import incumbent, next_pair_seed

INCUMBENT, CANDIDATE = "incumbent", "seed"  # the roles (experiment/paired.py: the extra runs' folder prefixes)


@dataclass(frozen=True)
class PairedRun:
    """One training + evaluation made for a decision: its val_bpb and machine speed, or why it failed."""

    val_bpb: float | None
    speed: float | None = None
    failure: str | None = None
    repeats: bool = True  # the failure would happen again on another seed (an invalid block, out of memory)


Train = Callable[[list[tuple[str, int]]], dict[tuple[str, int], PairedRun]]


def runs_ahead(decision: Decision, candidate_seeds, incumbent_seeds, default_seed: int,
               failed_seeds=()) -> list[tuple[str, int]]:
    """The (role, seed) runs the verdict asks for if every pair left stays undecided, in the order it reads them."""
    candidate_seeds, incumbent_seeds = set(candidate_seeds), dict.fromkeys(incumbent_seeds)
    seed, incumbent_lacks = decision.next_seed, decision.incumbent_runs_next
    runs = []
    for _ in range(max(1, decision.pairs_left)):
        if incumbent_lacks:
            runs.append((INCUMBENT, seed))
        if seed not in candidate_seeds:
            runs.append((CANDIDATE, seed))
        candidate_seeds.add(seed)
        incumbent_seeds.pop(seed, None)
        incumbent_seeds[seed] = None  # now the incumbent's newest run
        seed, incumbent_lacks = next_pair_seed(incumbent_seeds, candidate_seeds, default_seed, failed_seeds)
    return runs


def settle_pairs(rows: list[dict], settings: dict, first: Trained, train: Train, default_seed: int, width: int = 1,
                 selected_from: int = 1, kind: str | None = None,
                 first_failure: str | None = None) -> tuple[Decision, Trained, int]:
    """(decision, what it trained, trainings spent past the first run) once research.judging.verdict stops asking.
    `first_failure`: the candidate's first run failed for a reason that may not repeat (its seed is in
    first.failed_seeds): that is the decision's one retry, and its first pair is asked for on the next seed."""
    trained = first
    retries_left = int(settings.get("paired_crash_retries", 1)) - (1 if first_failure else 0)
    done: dict[tuple[str, int], PairedRun] = {}
    notes: list[str] = [f"the candidate's first run failed ({first_failure}), a failure that may not repeat: "
                        f"its pair was asked for on another seed"] if first_failure else []
    spent = 0
    while True:
        decision = judge_candidate(rows, settings, trained, default_seed, selected_from, kind=kind)
        if decision.status != CONTINUE:
            return _with_notes(decision, notes), trained, spent
        ahead = runs_ahead(decision, trained.candidate, {**incumbent(rows).runs, **trained.incumbent_new},
                           default_seed, trained.failed_seeds)
        seed = decision.next_seed
        pair = [run for run in ahead if run[1] == seed]  # this pair's runs, the incumbent's first
        if any(run not in done for run in pair):
            todo = [run for run in ahead if run not in done][:max(1, width)]
            done.update(train(todo))
            spent += len(todo)
        for role, _ in pair:
            if (role, seed) not in done:  # one device: the pair's second run, after its first succeeded
                done.update(train([(role, seed)]))
                spent += 1
            outcome = done[(role, seed)]
            if outcome.val_bpb is None:
                whose = "incumbent's" if role == INCUMBENT else "candidate's"
                failure = f"the {whose} paired run on seed {seed} failed ({outcome.failure})"
                if outcome.repeats or retries_left <= 0:
                    decision = judge_candidate(rows, settings, trained, default_seed, selected_from, failure, kind)
                    return _with_notes(decision, notes), trained, spent
                retries_left -= 1
                notes.append(failure + ", a failure that may not repeat: the pair was asked for on another seed")
                trained = replace(trained, failed_seeds=(*trained.failed_seeds, seed))
                break
            _record(trained, role, seed, outcome)


def _record(trained: Trained, role: str, seed: int, outcome: PairedRun) -> None:
    values, speeds = ((trained.incumbent_new, trained.incumbent_speeds) if role == INCUMBENT
                      else (trained.candidate, trained.candidate_speeds))
    values[seed] = outcome.val_bpb
    if outcome.speed is not None:
        speeds[seed] = outcome.speed


def _with_notes(decision: Decision, notes: list[str]) -> Decision:
    if not notes:
        return decision
    return replace(decision, verdict="; ".join([decision.verdict or decision.status, *notes]))
