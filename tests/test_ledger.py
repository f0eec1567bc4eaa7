"""Ledger: typed round trip, idempotence, header check, repair of a cut-off tail (failed writes: test_reliability_data)."""

import pytest

from research.records.ledger import COLUMNS, HEADER, Ledger, LedgerError


def full_row(exp, **overrides):
    row = {
        "exp": exp, "description": f"try {exp}", "val_bpb": 0.99 - exp / 1000, "mfu": 0.41, "status": "discard",
        "baseline_sha": "a" * 40, "change": "optim.matrix_lr=0.05", "key": "optim.matrix_lr", "value": "0.05", "previous": "0.04",
        "delta": -0.001, "best_val_bpb": 0.98, "paired_exp": 0, "paired_seeds": "42 43", "paired_delta": -0.0012,
        "paired_se": 0.0004, "verdict": "SPRT accepts a gain", "seed_runs": "42:0.99 43:0.991", "incumbent_runs": None,
        "seed_speeds": "42:61.5 43:60.25", "incumbent_speeds": None, "speed_slope": -0.06, "adjusted_val_bpb": 0.9903,
        "change_kind": "optimizer",
        "steps": 950, "tokens": 498_073_600, "tokens_per_second": 1.6e6,
        "peak_memory_gb": 44.2, "predicted_peak_gb": 43.1, "measured_peak_gb": 44.0, "predicted_steps": 940,
        "fit": None, "num_params_M": 50.3, "train_seconds": 300.1, "total_seconds": 371.0,
        "backend": "cuda", "device_name": "NVIDIA H100", "dataset": "climbmix", "data_version": "1a2b3c",
        "code_version": "deadbee", "seed": 42, "proposer": "claude", "llm_model": "claude-x",
        "llm_input_tokens": 12000, "llm_output_tokens": 300, "llm_cost_usd": 0.05, "energy_kwh": None,
        "commit_sha": "b" * 40, "reasoning": "because", "error": None,
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:06:00+00:00",
    }
    row.update(overrides)
    return row


def test_columns_start_with_the_seed():
    assert COLUMNS[:6] == ("exp", "description", "val_bpb", "mfu", "status", "baseline_sha")


def test_absent_and_empty_file_have_no_rows(tmp_path):
    ledger = Ledger(tmp_path / "results.tsv")
    assert ledger.rows() == [] and ledger.next_exp() == 0 and ledger.get(0) is None
    (tmp_path / "results.tsv").write_text("")
    assert ledger.rows() == []


def test_typed_round_trip_and_next_exp(tmp_path):
    ledger = Ledger(tmp_path / "results.tsv")
    rows = [full_row(0, status="baseline"), full_row(1, val_bpb=0.1 + 0.2), full_row(2, status="crash", val_bpb=None)]
    for row in rows:
        assert ledger.record(row) is True
    back = ledger.rows()
    assert back == rows  # bit-identical floats, ints stay ints, empty stays None
    assert isinstance(back[0]["steps"], int) and isinstance(back[0]["val_bpb"], float)
    assert ledger.next_exp() == 3
    assert ledger.get(1)["val_bpb"] == 0.1 + 0.2
    frame = ledger.to_dataframe()
    assert list(frame.columns) == list(COLUMNS) and list(frame["exp"]) == [0, 1, 2]


def test_missing_columns_are_empty_and_unknown_ones_rejected(tmp_path):
    ledger = Ledger(tmp_path / "results.tsv")
    assert ledger.record({"exp": 0, "status": "baseline", "val_bpb": 1.0})
    row = ledger.get(0)
    assert row["description"] is None and row["mfu"] is None and set(row) == set(COLUMNS)
    with pytest.raises(LedgerError, match="Unknown results.tsv column"):
        ledger.record({"exp": 1, "val_bpb_typo": 1.0})
    with pytest.raises(LedgerError, match="status"):
        ledger.record({"exp": 1, "status": "kept"})
    with pytest.raises(LedgerError, match="number"):
        ledger.record({"exp": 1, "val_bpb": "low"})
    assert [r["exp"] for r in ledger.rows()] == [0]


def test_record_is_idempotent(tmp_path):
    path = tmp_path / "results.tsv"
    ledger = Ledger(path)
    assert ledger.record(full_row(0, status="baseline"))
    before = path.read_bytes()
    assert ledger.record(full_row(0, status="keep", description="again")) is False
    assert path.read_bytes() == before
    assert len(ledger.rows()) == 1


@pytest.mark.parametrize("missing", ["paired and speed", "speed"])
def test_a_ledger_from_before_the_paired_or_speed_columns_is_read_and_upgraded_on_the_next_write(tmp_path, missing):
    from research.records.ledger import FIT_COLUMNS, PAIRED_COLUMNS, SPEED_COLUMNS, format_row

    absent = FIT_COLUMNS + SPEED_COLUMNS + (PAIRED_COLUMNS if missing == "paired and speed" else ())
    old_columns = [column for column in COLUMNS if column not in absent]
    old_row = {key: value for key, value in full_row(0, status="baseline").items() if key not in absent}
    line = "\t".join(format_row(old_row).split("\t")[i] for i, column in enumerate(COLUMNS) if column in old_columns)
    path = tmp_path / "results.tsv"
    path.write_text("\t".join(old_columns) + "\n" + line + "\n")
    ledger = Ledger(path)
    assert ledger.rows()[0]["val_bpb"] == 0.99 and ledger.rows()[0]["seed_speeds"] is None
    assert ledger.rows()[0]["description"] == "try 0" and ledger.rows()[0]["finished_at"] == full_row(0)["finished_at"]
    ledger.record(full_row(1))
    assert path.read_text().startswith(HEADER + "\n") and [row["exp"] for row in ledger.rows()] == [0, 1]
    assert ledger.rows()[0]["description"] == "try 0" and ledger.rows()[1]["paired_seeds"] == "42 43"


def test_foreign_header_is_a_clear_error(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text("commit\tval_bpb\tmemory_gb\tstatus\tdescription\nabc\t0.99\t44\tkeep\tx\n")
    with pytest.raises(LedgerError) as err:
        Ledger(path).rows()
    message = str(err.value)
    assert "header" in message and "move the file aside" in message and "\n" not in message


def test_cut_off_last_line_is_dropped_with_a_warning_and_repaired_on_next_record(tmp_path, caplog):
    path = tmp_path / "results.tsv"
    ledger = Ledger(path)
    ledger.record(full_row(0, status="baseline"))
    ledger.record(full_row(1))
    good = path.read_bytes()
    path.write_bytes(good + b"2\tpartial descr")  # a power cut in the middle of an external append
    assert [r["exp"] for r in ledger.rows()] == [0, 1]
    assert "cut-off" in caplog.text
    assert ledger.next_exp() == 2
    assert ledger.record(full_row(2))
    assert [r["exp"] for r in ledger.rows()] == [0, 1, 2]
    assert b"partial descr" not in path.read_bytes()


def test_damaged_last_line_with_newline_is_dropped_but_damage_inside_is_an_error(tmp_path, caplog):
    path = tmp_path / "results.tsv"
    ledger = Ledger(path)
    ledger.record(full_row(0, status="baseline"))
    path.write_bytes(path.read_bytes() + b"1\tonly three\tfields\n")
    assert [r["exp"] for r in ledger.rows()] == [0]
    assert "damaged last line" in caplog.text
    path.write_bytes(path.read_bytes() + b"2" + b"\t" * (len(COLUMNS) - 1) + b"\n")
    with pytest.raises(LedgerError, match="line 3 is damaged"):
        ledger.rows()


def test_cut_off_header_counts_as_empty(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text(HEADER[:25])
    assert Ledger(path).rows() == []


def test_crlf_from_an_editor_is_tolerated(tmp_path):
    path = tmp_path / "results.tsv"
    ledger = Ledger(path)
    ledger.record(full_row(0, status="baseline"))
    ledger.record(full_row(1))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert [r["exp"] for r in ledger.rows()] == [0, 1]
