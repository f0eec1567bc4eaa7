"""experiment.paired (research.judging.paired_runs' loop): with several devices the paired runs the verdict will ask for are
trained together and the verdict is the one the one-at-a-time loop reaches; a paired run that fails for a reason
that may not repeat is asked for once more on another seed; the UI names say which block ran. Stand-in steps
answer each training from a table (no training here), and records how many were in flight at once."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from experiment.lifecycle import ExperimentLifecycle, RunContext
from experiment.outcome import Outcome
from experiment.paired import settle
from experiment.setup import ExperimentSetup
from flows.compose import CONF_DIR, compose
from research.proposing.space import load_space
from research.records.heartbeat import Heartbeat
from research.records.state import RunState
from research.judging.pairing import format_runs

# Failures as the training process reports them: one that may not repeat on another seed, one that would.
KILLED = {"status": "failed", "kind": "process", "reason": "training was killed (signal 9)"}
OUT_OF_MEMORY = {"status": "failed", "kind": "oom", "reason": "out of memory (OutOfMemoryError)"}

SEQ = ["decide.sequential.alpha=0.05", "decide.sequential.beta=0.2", "decide.sequential.effect=2.0",
       "decide.sequential.max_pairs=4", "decide.sequential.prior_df=1", "decide.sequential.min_gain=0.0"]
# Baselines 1.00 (seed 42) and 1.01 (43): a paired sd prior of 0.01 judged as 0.0141 (one df), so a gain of 0.02
# per pair, then 0.025, is kept on the third pair (tests/test_decide_paired.py). Seed 44 is new to the incumbent.
ROWS = [{"exp": i, "status": "baseline", "seed": 42 + i, "val_bpb": v, "seed_runs": format_runs({42 + i: v})}
        for i, v in enumerate((1.00, 1.01))]
GAINING = {("seed", 43): 0.99, ("incumbent", 44): 1.00, ("seed", 44): 0.975, ("incumbent", 45): 1.00,
           ("seed", 45): 0.975}


class TableSteps:
    """experiment.steps.Steps with val_bpb from `table` (a dict: the failed training's metrics), no training: it
    records how many were in flight at once and how each run was named."""

    trains_here = False  # no fit check: the table's blocks need no device

    def __init__(self, table: dict):
        self.table, self.lock = table, threading.Lock()
        self.in_flight, self.most_at_once, self.trained, self.labels = 0, 0, [], []

    def train_and_evaluate(self, setup, deadline, silence, eval_silence, before_evaluation) -> Outcome:
        role, seed = setup.directory.name.split("-")
        with self.lock:
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
            self.trained.append((role, int(seed)))
            self.labels.append(setup.label)
        time.sleep(0.05)  # long enough for the runs of one batch to overlap
        with self.lock:
            self.in_flight -= 1
        value = self.table[(role, int(seed))]
        if isinstance(value, dict):
            return Outcome(value)
        before_evaluation()
        return Outcome({"status": "ok", "machine_speed": 100.0}, {"status": "ok", "val_bpb": value})


def settle_with(parallel: int, table: dict, tmp_path: Path):
    cfg = compose(["preset=cpu", f"research.parallel={parallel}", *SEQ])
    data = {"shard_dir": str(tmp_path), "tokenizer_dir": str(tmp_path), "data_version": "test"}
    steps = TableSteps(table)
    run = RunContext(cfg, tmp_path, "run", None, load_space(CONF_DIR / "space.yaml"), data, {"code_version": "x"},
                     Heartbeat(tmp_path / "heartbeat.json", "t"))
    life = ExperimentLifecycle(run, steps)
    directory = tmp_path / f"parallel-{parallel}"
    directory.mkdir(parents=True)
    state = RunState(ROWS, cfg["hparams"], "sha0", 1.0, 1.0, 0.01)
    setup = ExperimentSetup(2, state, directory, None, "sha", 42, 0.0, False, "optim.matrix_lr=0.05", "key")
    candidate_hparams = {**cfg["hparams"], "optim": {**cfg["hparams"]["optim"], "matrix_lr": 0.05}}
    decision, trained = settle(life, setup, candidate_hparams, 0.98, ROWS)
    return steps, decision, trained.candidate, trained.incumbent_new


def test_several_devices_train_the_pairs_ahead_together_and_reach_the_same_verdict(tmp_path):
    one, *alone = settle_with(1, GAINING, tmp_path)
    four, *together = settle_with(4, GAINING, tmp_path)
    assert alone == together  # decision, candidate runs, incumbent's new runs
    decision, candidate, incumbent_new = together
    assert decision.keep and decision.paired_seeds == (42, 43, 44)
    assert candidate == {42: 0.98, 43: 0.99, 44: 0.975} and incumbent_new == {44: 1.00}
    # One device: exactly the runs the verdict read, one at a time, the incumbent's before the candidate's.
    assert one.trained == [("seed", 43), ("incumbent", 44), ("seed", 44)] and one.most_at_once == 1
    # Four: the next four runs at once (the third pair's incumbent run too, trained but never read).
    assert sorted(four.trained) == sorted([("seed", 43), ("incumbent", 44), ("seed", 44), ("incumbent", 45)])
    assert four.most_at_once == 4


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_paired_run_killed_on_one_seed_is_asked_for_again_on_the_next(tmp_path, parallel):
    table = {**GAINING, ("incumbent", 44): KILLED, ("incumbent", 46): 1.00, ("seed", 46): 0.975}  # 46: two devices look ahead
    runner, decision, candidate, incumbent_new = settle_with(parallel, table, tmp_path)
    assert decision.keep and decision.paired_seeds == (42, 43, 45)
    assert candidate == {42: 0.98, 43: 0.99, 45: 0.975} and incumbent_new == {45: 1.00}
    assert "the incumbent's paired run on seed 44 failed (training was killed (signal 9))" in decision.verdict
    assert "asked for on another seed" in decision.verdict
    # One device never trains the candidate's run of a pair whose incumbent run failed; two train both at once.
    assert (("seed", 44) in runner.trained) == (parallel == 2)


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_second_failure_or_one_that_would_repeat_ends_the_decision_the_same_way(tmp_path, parallel):
    twice = {**GAINING, ("incumbent", 44): KILLED, ("seed", 45): KILLED, ("incumbent", 46): 1.0, ("seed", 46): 0.975}
    _, decision, candidate, _ = settle_with(parallel, twice, tmp_path)
    assert decision.status == "discard" and decision.error.startswith("the candidate's paired run on seed 45 failed")
    assert candidate == {42: 0.98, 43: 0.99}
    runner, decision, candidate, incumbent_new = settle_with(parallel, {**GAINING, ("seed", 43): OUT_OF_MEMORY},
                                                             tmp_path / "oom")
    assert decision.status == "discard" and "out of memory" in decision.error and decision.verdict is None  # no retry
    assert ("seed", 44) not in runner.trained or parallel == 2


def test_each_run_is_named_for_the_block_it_trains(tmp_path):
    runner, *_ = settle_with(1, GAINING, tmp_path)
    assert runner.labels == ["optim.matrix_lr=0.05 seed 43", "incumbent (baseline) seed 44",
                             "optim.matrix_lr=0.05 seed 44"]
