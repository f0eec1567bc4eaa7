"""What a run cost and what each 0.01 val_bpb of gain cost, from ledger rows (research/run_costs.py)."""
from __future__ import annotations

import pytest

from research.finalize import Paired
from research.run_costs import cost_lines, cumulative_training_hours, per_gain, run_costs, trainings


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
        {"exp": 4, "status": "skip", "llm_input_tokens": 9000, "llm_output_tokens": 0, "llm_cost_usd": 0.04},
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
    from research.run_costs import cost_figures

    base = {"status": "done", "experiments": 5, "baseline_val_bpb": 1.001, "best_val_bpb": 0.99, "gain": 0.011,
            "keeps": 1, "crashes": 1}
    verified = {"dataset": "bundled", **base, **cost_figures(rows(), 0.011, Paired(0.005, 0.001, 4))}
    unmeasured = {"dataset": "local", **base, **cost_figures(rows(energy=None), 0.011, None)}
    table = summary_markdown("nightly", "20261129", [verified, unmeasured])
    assert "| bundled | 0.306 | 0.3000 | 20,000 | 0.1000 | 0.005000 | verified | 0.2000 | 0.6000 |" in table
    assert "| local | 0.306 | not measured | 20,000 | 0.1000 |  | kept | 0.0909 |  |" in table
