"""experiment.record.record_experiment records what research.judging.verdict decided: the row, main, nothing judged twice."""
from __future__ import annotations

import time

import pytest

from research.records.ledger import Ledger
from research.proposing.proposal_record import ProposalRecord
from research.records.runrepo import RunRepo
from research.proposing.space import Change
from research.records.state import RunState
from research.judging.verdict import Trained, judge_candidate
from experiment.record import ExperimentFacts, record_experiment

RUN_INFO = {"dataset": "bundled", "data_version": "v1", "code_version": "c1", "proposer": "local"}
PROPOSAL = ProposalRecord("ok", "local", Change("optim.matrix_lr", 0.05, "hparams.optim.matrix_lr=0.05", "raise it",
                                                "why not", previous=0.04))
SETTINGS = {"rule": "sequential", "min_delta": 0.001, "sigma_k": 2.0,
            "sequential": {"alpha": 0.05, "beta": 0.2, "effect": 2.0, "max_pairs": 6, "prior_df": 1, "min_gain": 0.0}}
BASELINES = [{"exp": 0, "status": "baseline", "seed": 42, "val_bpb": 1.00, "seed_runs": "42:1.0"},
             {"exp": 1, "status": "baseline", "seed": 43, "val_bpb": 1.01, "seed_runs": "43:1.01"}]


@pytest.fixture
def run_dir(tmp_path):
    repo = RunRepo(tmp_path / "repo")
    repo.init("seed: 42\n")
    return tmp_path


def record(run_dir, decision, runs, incumbent_new=None, exp=2, speeds=None):
    repo = RunRepo(run_dir / "repo")
    sha = repo.commit_experiment(exp, "seed: 42\nx: 1\n", f"exp{exp}: change", repo.tag_sha(0))
    state = RunState(rows=list(BASELINES), hparams={"seed": 42}, base_sha=repo.tag_sha(0), best_val_bpb=1.005,
                     baseline_val_bpb=1.005, sigma=0.007)
    metrics = {"status": "ok", "steps": 3, "tokens": 30, "backend": "cpu"}
    facts = ExperimentFacts(exp, state, PROPOSAL, metrics, {"status": "ok", "val_bpb": 0.9}, sha, 42, time.time())
    trained = Trained(runs, incumbent_new or {}, speeds or {})
    return record_experiment(str(run_dir), facts, decision, trained, RUN_INFO)


def test_a_keep_is_recorded_with_its_paired_figures_and_moves_main(run_dir):
    runs = {42: 0.90, 43: 0.91}
    decision = judge_candidate(BASELINES, SETTINGS, Trained(runs), 42, kind="optimizer")
    assert decision.keep
    row = record(run_dir, decision, runs, speeds={42: 61.5, 43: 60.25})
    assert row["status"] == "keep" and row["paired_exp"] == 0 and row["paired_seeds"] == "42 43"
    # Paired sd: the safe prior sqrt(2) x the baselines' seed sd (0.01 / sqrt(2)) = 0.01, widened by sqrt(1 + 1/1)
    # for its one degree of freedom, over two pairs: 0.01.
    assert row["paired_delta"] == pytest.approx(-0.1) and row["paired_se"] == pytest.approx(0.01)
    assert "SPRT" in row["verdict"] and row["change_kind"] == "optimizer" and row["seed_speeds"] == "42:61.5 43:60.25"
    assert row["speed_slope"] == 0.0 and row["adjusted_val_bpb"] == pytest.approx(0.905)
    assert row["seed_runs"] == "42:0.9 43:0.91" and row["val_bpb"] == pytest.approx(0.905)
    assert row["best_val_bpb"] == pytest.approx(0.905) and row["delta"] == pytest.approx(0.905 - 1.005)
    assert RunRepo(run_dir / "repo").main_sha() == row["commit_sha"]
    assert row["change"] == "optim.matrix_lr=0.05" and row["previous"] == "0.04"


def test_a_discard_records_the_incumbents_new_runs_and_leaves_main(run_dir):
    decision = judge_candidate(BASELINES, SETTINGS, Trained({42: 1.2}), 42)
    row = record(run_dir, decision, {42: 1.2}, {44: 1.02})
    assert row["status"] == "discard" and row["incumbent_runs"] == "44:1.02"
    assert RunRepo(run_dir / "repo").main_sha() == RunRepo(run_dir / "repo").tag_sha(0)


def test_a_failed_paired_run_is_a_discard_with_its_reason(run_dir):
    decision = judge_candidate(BASELINES, SETTINGS, Trained({42: 0.99}), 42, failure="the candidate's paired run on seed 43 failed")
    row = record(run_dir, decision, {42: 0.99})
    assert row["status"] == "discard" and "seed 43 failed" in row["error"]


def test_recording_twice_writes_one_row(run_dir):
    first = record(run_dir, judge_candidate(BASELINES, SETTINGS, Trained({42: 0.9, 43: 0.91}), 42), {42: 0.9, 43: 0.91})
    again = record(run_dir, judge_candidate(BASELINES, SETTINGS, Trained({42: 1.5}), 42), {42: 1.5})
    assert again == first and len(Ledger(run_dir / "results.tsv").rows()) == 1
