"""bench/proposer_cpu.py --record: a comparison of proposers on real trainings spans sittings, so each finished run
is kept as data, read back instead of trained again, and only ever joined by runs started the same way."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench/ scripts are not part of the package
from bench import cpu_runs, proposer_cpu, remeasure  # noqa: E402
from research.records.layout import RunLayout  # noqa: E402
from research.records.ledger import Ledger  # noqa: E402

SETTINGS = {"baselines": 2, "proposals": 1, "overrides": [], "arithmetic": "bfloat16"}


def run_rows(proposer, seed, change="model.depth=3"):
    return [
        {"exp": 0, "status": "baseline", "val_bpb": 2.00, "best_val_bpb": 2.01, "seed": seed, "train_seconds": 60},
        {"exp": 1, "status": "baseline", "val_bpb": 2.02, "best_val_bpb": 2.01, "seed": seed + 1, "train_seconds": 60},
        # the candidate on both seeds: two trainings
        {"exp": 2, "status": "keep", "val_bpb": 1.97, "best_val_bpb": 1.97, "change": change, "seed": seed,
         "proposer": proposer, "train_seconds": 90, "seed_runs": f"{seed}:1.97 {seed + 1}:1.99"},
    ]


def test_a_record_is_only_joined_by_runs_started_the_same_way(tmp_path):
    cpu_runs.Record(tmp_path, SETTINGS)
    cpu_runs.Record(tmp_path, dict(SETTINGS))  # the same settings: the next sitting goes on
    with pytest.raises(SystemExit, match="holds runs started with"):
        cpu_runs.Record(tmp_path, {**SETTINGS, "overrides": ["budget.kind=steps", "budget.steps=40"]})


def test_recorded_runs_are_read_and_the_missing_ones_trained_then_recorded(tmp_path, monkeypatch, capsys):
    record = tmp_path / "record"
    cpu_runs.Record(record, SETTINGS)
    recorded = Ledger(record / "bench-local-s42.tsv")
    for item in run_rows("local", 42):
        recorded.record(item)
    trained = []

    def fake_flow(tag, runs_dir, overrides):
        trained.append(tag)
        ledger = Ledger(RunLayout.of(runs_dir, tag).results)
        for item in run_rows(tag.split("-")[1], 42):
            ledger.record(item)
        return ledger.rows(), 60.0

    monkeypatch.setattr(cpu_runs, "run_flow", fake_flow)
    monkeypatch.setattr(proposer_cpu, "run_flow", fake_flow)  # a run that bypassed the record trains here
    monkeypatch.setattr(cpu_runs, "RECORD_RUNS", tmp_path / "runs")
    monkeypatch.setattr(proposer_cpu, "cpu_arithmetic", lambda: "bfloat16")  # the record's machine
    remeasured = []
    monkeypatch.setattr(proposer_cpu, "remeasure", lambda runs, first_seed, *rest: remeasured.append(first_seed))
    monkeypatch.setattr(sys, "argv", ["proposer_cpu.py", "--proposals", "1", "--proposers", "local,random",
                                      "--record", str(record), "--remeasure", "2"])
    proposer_cpu.main()
    # Fresh seeds that stay the same as runs join the record (so its re-measurements stay valid): 1000 on.
    assert remeasured == [1000]
    assert trained == ["bench-random-s42"]  # local's run was in the record
    assert Ledger(record / "bench-random-s42.tsv").rows() == Ledger(
        RunLayout.of(tmp_path / "runs" / "bench-proposers-record", "bench-random-s42").results).rows()
    table = capsys.readouterr().out
    # 4 trainings: two baselines of 60 s and the candidate's two of 90 s, 300 s in all
    assert "| 42 | local | 2.0100 | 1.9700 | 0.0400 | 1 | 0 | 0 | 4 | 0.08 | recorded |" in table
    assert "| 42 | random | 2.0100 | 1.9700 | 0.0400 | 1 | 0 | 0 | 4 | 0.08 | 1.0 |" in table
    assert not list(record.glob("*.partial"))
    # The next sitting on a machine without native bf16 trains in fp32: its runs would be no pairs for these.
    monkeypatch.setattr(proposer_cpu, "cpu_arithmetic", lambda: "float32")
    with pytest.raises(SystemExit, match="holds runs started with .*'arithmetic': 'bfloat16'"):
        proposer_cpu.main()
    assert len(trained) == 1


def test_a_recorded_remeasurement_is_found_again_by_what_it_measured(tmp_path, monkeypatch, capsys):
    trained = []

    def fake_flow(tag, runs_dir, overrides):
        trained.append(tag)
        ledger = Ledger(RunLayout.of(runs_dir, tag).results)
        better = any(o.startswith("hparams.model.depth=") for o in overrides)
        for seed in (1000, 1001):
            value = 2.0 - 0.05 * better + (seed - 1000) * 0.002
            ledger.record({"exp": seed - 1000, "status": "baseline", "val_bpb": value, "best_val_bpb": 2.0,
                           "seed": seed, "steps": 150})
        return ledger.rows(), 60.0

    monkeypatch.setattr(cpu_runs, "run_flow", fake_flow)
    monkeypatch.setattr(remeasure, "run_flow", fake_flow)  # a measurement that bypassed the record trains here
    monkeypatch.setattr(cpu_runs, "RECORD_RUNS", tmp_path / "runs")
    record = cpu_runs.Record(tmp_path / "record", SETTINGS)
    found = remeasure.FinishedRun.of_rows(run_rows("local", 42), "bench-local-s42")  # kept model.depth=3
    remeasure.remeasure([found], 1000, 2, [], tmp_path, record)
    assert len(trained) == 2  # the default block and the run's best config
    first = capsys.readouterr().out
    # A later sitting with one more run: only the new config trains; the two measured before are read back.
    other = remeasure.FinishedRun.of_rows(run_rows("local", 44, "optim.matrix_lr=0.05"), "bench-local-s44")
    remeasure.remeasure([found, other], 1000, 2, [], tmp_path, record)
    assert len(trained) == 3 and len(set(trained)) == 3
    again = capsys.readouterr().out
    assert "| model.depth=3 | bench-local-s42 | 150.0 | 1.9510 | 0.0500 +- 0.0000 (2 pairs) |" in first
    assert "| model.depth=3 | bench-local-s42 | 150.0 | 1.9510 | 0.0500 +- 0.0000 (2 pairs) |" in again
    # what the run spent (4 trainings, 300 s) against what it verifiably gained (0.05)
    assert "local: 4.0 trainings and 0.0 crashes per run; re-measured gain per training hour 0.6000" in first
    # two runs, 600 s: 0.05 + 0 gained (matrix_lr does nothing in this fake) is 0.3 per hour
    assert "local: 4.0 trainings and 0.0 crashes per run; re-measured gain per training hour 0.3000" in again
