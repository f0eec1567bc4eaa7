"""The ledger's fit columns: a row carries the predicted peak and steps beside the measured ones, and a ledger written
before these columns existed (a real one, tests/ledgers/) still loads and is upgraded on the next write."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from research.records.ledger import COLUMNS, FIT_COLUMNS, HEADER, Ledger
from experiment.record import ExperimentFacts, build_row

OLD_LEDGER = Path(__file__).parent / "ledgers" / "cpu_defaults_first_run.tsv"
RUN_INFO = {"dataset": "bundled", "data_version": "d1", "code_version": "c1", "proposer": "local"}


def facts(metrics: dict | None, fit: dict | None) -> ExperimentFacts:
    return ExperimentFacts(5, SimpleNamespace(base_sha="a" * 40), None, metrics, {"status": "ok", "val_bpb": 1.5},
                           "b" * 40, 42, 0.0, fit)


def test_a_row_carries_the_predicted_and_measured_peak_and_steps(tmp_path):
    fit = {"predicted_peak_gb": 0.7407, "predicted_steps": 150, "fit": "device_batch_size lowered from 16 to 8 (...)"}
    row = build_row(facts({"status": "ok", "steps": 150, "peak_tensor_gb": 0.7406, "peak_memory_gb": 1.28}, fit),
                    "baseline", RUN_INFO, None)
    assert (row["predicted_peak_gb"], row["measured_peak_gb"]) == (0.7407, 0.7406)
    assert (row["predicted_steps"], row["steps"]) == (150, 150) and row["fit"] == fit["fit"]
    ledger = Ledger(tmp_path / "results.tsv")
    ledger.record(row)
    back = ledger.get(5)
    assert {column: back[column] for column in FIT_COLUMNS} == {
        "predicted_peak_gb": 0.7407, "measured_peak_gb": 0.7406, "predicted_steps": 150, "fit": fit["fit"]}
    # No prediction made (a work pool's run) and no training (a skip): the columns stay empty.
    bare = build_row(facts(None, None), "skip", RUN_INFO, "why")
    assert all(bare.get(column) is None for column in FIT_COLUMNS)


def test_a_ledger_from_before_the_fit_columns_loads_and_is_upgraded(tmp_path):
    path = tmp_path / "results.tsv"
    shutil.copy(OLD_LEDGER, path)
    assert not set(FIT_COLUMNS) & set(path.read_text().splitlines()[0].split("\t"))
    ledger = Ledger(path)
    rows = ledger.rows()
    assert len(rows) == 6 and rows[0]["status"] == "baseline" and rows[0]["val_bpb"] > 0
    assert all(row[column] is None for row in rows for column in FIT_COLUMNS) and set(rows[0]) == set(COLUMNS)
    ledger.record({**rows[-1], "exp": 6, "predicted_peak_gb": 0.5, "predicted_steps": 150})
    assert path.read_text().startswith(HEADER + "\n")
    upgraded = Ledger(path).rows()
    assert upgraded[:6] == rows and upgraded[6]["predicted_peak_gb"] == 0.5
