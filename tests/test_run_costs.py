"""What a run cost and what each 0.01 val_bpb of gain cost, from ledger rows (research/reporting/run_costs.py)."""
from __future__ import annotations

import pytest

from research.judging.finalize import Paired
from research.reporting.run_costs import cost_lines, cumulative_training_hours, per_gain, run_costs, training_hours, trainings


def rows(energy: float | None = 0.05) -> list[dict]:
    common = {"train_seconds": 300.0, "total_seconds": 360.0, "energy_kwh": energy}
    return [
        {"exp": 0, "status": "baseline", "seed_runs": "42:1.0", **common},
        {"exp": 1, "status": "baseline", "seed_runs": "43:1.002", **common},
        # a paired decision: the candidate on three seeds, the incumbent trained on one it lacked
        {"exp": 2, "status": "keep", "seed_runs": "42:0.99 43:0.991 44:0.99", "incumbent_runs": "44:1.001",
         "llm_input_tokens": 5000, "llm_output_tokens": 500, "llm_cost_usd": 0.03, **common},
        {"exp": 3, "status": "crash", "llm_input_tokens": 5000, "llm_output_tokens": 500, "llm_cost_usd": 0.03,
         "train_seconds": None, "total_seconds": 20.0, "energy_kwh": None},
        # a skipped proposal: the LLM's time is recorded, but no training held the device
        {"exp": 4, "status": "skip", "llm_input_tokens": 9000, "llm_output_tokens": 0, "llm_cost_usd": 0.04,
         "total_seconds": 45.0, "energy_kwh": None},
    ]


def test_every_training_a_row_paid_for_is_counted():
    assert [trainings(row) for row in rows()] == [1, 1, 4, 1, 0]
    assert cumulative_training_hours(rows())[-1] == (4, pytest.approx(6 * 300 / 3600))


def test_run_costs_add_pairs_energy_and_llm_usage():
    costs = run_costs(rows())
    assert costs.trainings == 7 and costs.training_hours == pytest.approx(0.5)
    assert costs.device_hours == pytest.approx((3 * 360 + 20) / 3600)  # a skip never held the device
    assert costs.energy_kwh == pytest.approx(6 * 0.05) and costs.measured_rows == 3
    assert costs.llm_tokens == 20000 and costs.llm_cost_usd == pytest.approx(0.10)


def test_energy_stays_empty_where_nothing_was_measured():
    costs = run_costs(rows(energy=None))
    assert costs.energy_kwh is None and costs.measured_rows == 0
    assert "- Energy: not measured (no energy counter on this hardware)" in cost_lines(costs, 0.01, None, 5)


def test_cost_per_gain_uses_the_kept_gain_and_the_verified_one_when_there_is_one():
    costs = run_costs(rows())
    lines = cost_lines(costs, 0.02, Paired(0.005, 0.001, 4), 5)
    assert "- Per 0.01 val_bpb of kept gain (0.020000): $0.0500 of LLM, 0.1500 kWh, 0.153 device hours" in lines
    assert "- Per 0.01 val_bpb of verified gain (0.005000): $0.2000 of LLM, 0.6000 kWh, 0.611 device hours" in lines
    assert per_gain(1.0, 0.0) is None and per_gain(1.0, -0.01) is None and per_gain(None, 0.02) is None
    assert "- Per 0.01 val_bpb of kept gain: n/a (no gain)" in cost_lines(costs, None, None, 5)


def test_the_suite_summary_shows_each_nights_cost_per_verified_gain():
    from flows.suite import summary_markdown
    from research.reporting.run_costs import cost_figures

    base = {"status": "done", "experiments": 5, "baseline_val_bpb": 1.001, "best_val_bpb": 0.99, "gain": 0.011,
            "keeps": 1, "crashes": 1}
    verified = {"dataset": "bundled", **base, **cost_figures(rows(), 0.011, Paired(0.005, 0.001, 4))}
    unmeasured = {"dataset": "local", **base, **cost_figures(rows(energy=None), 0.011, None)}
    table = summary_markdown("nightly", "20261129", [verified, unmeasured])
    assert "| bundled | 0.306 | 0.3000 | 20,000 | 0.1000 | 0.005000 | verified | 0.2000 | 0.6000 |" in table
    assert "| local | 0.306 | not measured | 20,000 | 0.1000 |  | kept | 0.0909 |  |" in table


def test_a_skipped_proposal_is_no_device_time_and_no_training():
    skip = rows()[-1]
    assert skip["status"] == "skip" and skip["total_seconds"] == 45.0
    assert trainings(skip) == 0 and run_costs([skip]).device_hours == 0.0 and run_costs([skip]).trainings == 0
    # The same row had it trained: its 45 s count.
    assert run_costs([{**skip, "status": "discard"}]).device_hours == 45.0 / 3600


def test_the_energy_line_and_a_gain_of_exactly_zero():
    costs = run_costs(rows())
    lines = cost_lines(costs, 0.0, Paired(0.004, 0.001, 4), 5)
    assert lines[1] == "- Energy: 0.3000 kWh (measured on 3 of 5 experiments)"
    assert lines[0] == "- Trainings: 7; training hours: 0.500; device hours (GPU-hours on a GPU): 0.306"
    assert lines[2] == "- LLM tokens: 20,000; cost: $0.1000"
    # No kept gain (0.0 is none): said so, and the verified gain's line still follows.
    assert lines[3:] == ["- Per 0.01 val_bpb of kept gain: n/a (no gain)",
                         "- Per 0.01 val_bpb of verified gain (0.004000): $0.2500 of LLM, 0.7500 kWh, 0.764 device hours"]
    unmeasured = cost_lines(run_costs(rows(energy=None)), 0.02, None, 5)
    assert unmeasured[-1] == "- Per 0.01 val_bpb of kept gain (0.020000): $0.0500 of LLM, energy not measured, 0.153 device hours"


def test_a_row_without_figures_counts_one_training_and_nothing_else():
    assert trainings({"status": "crash"}) == 1 and training_hours({"status": "crash"}) == 0.0
    costs = run_costs([{"exp": 0, "status": "crash", "train_seconds": "nan", "total_seconds": None}])
    assert (costs.trainings, costs.training_hours, costs.device_hours, costs.energy_kwh, costs.llm_tokens,
            costs.llm_cost_usd) == (1, 0.0, 0.0, None, 0, 0.0)


def test_verified_gain_reads_finalize_tsv(tmp_path):
    from research.records.finalize_table import FinalizeTable
    from research.reporting.run_costs import verified_gain

    path = tmp_path / "finalize.tsv"
    assert verified_gain(path) is None  # finalize never ran
    table = FinalizeTable(path)
    table.record({"arm": "baseline", "seed": 1000, "val_bpb": 2.0})
    assert verified_gain(path) == Paired(0.0, None, 1)  # no keep: final is the baseline, trained under its name
    table.record({"arm": "final", "seed": 1000, "val_bpb": 1.9})
    table.record({"arm": "baseline", "seed": 1001, "val_bpb": 2.2})
    table.record({"arm": "final", "seed": 1001, "val_bpb": 2.0})
    table.record({"arm": "without-exp3", "seed": 1001, "val_bpb": 1.0})  # an ablation arm: not part of the gain
    gain = verified_gain(path)
    assert gain.mean == pytest.approx(0.15) and gain.se == pytest.approx(0.05) and gain.pairs == 2
    other = tmp_path / "only-final.tsv"
    FinalizeTable(other).record({"arm": "final", "seed": 1000, "val_bpb": 1.9})
    assert verified_gain(other) is None  # nothing to pair it with
