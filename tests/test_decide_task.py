"""tasks.decide.decide_experiment: the row it records for each outcome, including decide.confirm."""
from __future__ import annotations

import time

import pytest

from research.ledger import Ledger
from research.runrepo import RunRepo
from research.state import RunState
from tasks.decide import decide_experiment

DECIDE = {"min_delta": 0.001, "sigma_k": 2.0}
RUN_INFO = {"dataset": "bundled", "data_version": "v1", "code_version": "c1", "proposer": "local"}
PROPOSAL = {"status": "ok", "key": "optim.matrix_lr", "value": 0.05, "canonical": "0.05", "text": "optim.matrix_lr=0.05",
            "previous": 0.04, "description": "raise it", "reasoning": "why not", "proposer": "local"}


@pytest.fixture
def run_dir(tmp_path):
    repo = RunRepo(tmp_path / "repo")
    repo.init("seed: 42\n")
    return tmp_path


def state_with_best(run_dir, best=1.0, sigma=0.01) -> RunState:
    base = RunRepo(run_dir / "repo").tag_sha(0)
    return RunState(rows=[], hparams={"seed": 42}, base_sha=base, best_val_bpb=best, baseline_val_bpb=best, sigma=sigma)


def record(run_dir, evaluation, exp=2):
    repo = RunRepo(run_dir / "repo")
    sha = repo.commit_experiment(exp, "seed: 42\nx: 1\n", f"exp{exp}: change", repo.tag_sha(0))
    metrics = {"status": "ok", "steps": 3, "tokens": 30, "backend": "cpu"}
    return decide_experiment(str(run_dir), exp, state_with_best(run_dir), dict(PROPOSAL), metrics, evaluation, DECIDE,
                             RUN_INFO, sha, 42, time.time(), baseline=False)


def test_a_clear_win_is_kept_and_moves_main(run_dir):
    row = record(run_dir, {"status": "ok", "val_bpb": 0.9})
    assert row["status"] == "keep" and row["best_val_bpb"] == 0.9 and row["delta"] == pytest.approx(-0.1)
    assert RunRepo(run_dir / "repo").main_sha() == row["commit_sha"]
    assert row["change"] == "optim.matrix_lr=0.05" and row["previous"] == "0.04"


def test_a_win_within_the_noise_is_discarded(run_dir):
    row = record(run_dir, {"status": "ok", "val_bpb": 0.985})  # better, but by less than 2 sigma = 0.02
    assert row["status"] == "discard" and row["best_val_bpb"] == 1.0
    assert RunRepo(run_dir / "repo").main_sha() == RunRepo(run_dir / "repo").tag_sha(0)


def test_a_confirmed_keep_is_judged_and_recorded_by_the_mean(run_dir):
    row = record(run_dir, {"status": "ok", "val_bpb": 0.9, "confirm_val_bpb": [0.94]})
    assert row["status"] == "keep" and row["val_bpb"] == 0.9
    assert row["best_val_bpb"] == pytest.approx(0.92)


def test_a_lucky_first_run_is_not_confirmed(run_dir):
    row = record(run_dir, {"status": "ok", "val_bpb": 0.9, "confirm_val_bpb": [1.08]})  # mean 0.99: within noise
    assert row["status"] == "discard" and row["best_val_bpb"] == 1.0


def test_a_failed_confirmation_confirms_nothing(run_dir):
    row = record(run_dir, {"status": "ok", "val_bpb": 0.9, "confirm_val_bpb": [None]})
    assert row["status"] == "discard" and "confirmation" in row["error"]


def test_recording_twice_writes_one_row(run_dir):
    first = record(run_dir, {"status": "ok", "val_bpb": 0.9})
    again = record(run_dir, {"status": "ok", "val_bpb": 0.5})
    assert again == first and len(Ledger(run_dir / "results.tsv").rows()) == 1
