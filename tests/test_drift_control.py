"""Fresh incumbent runs: a control run now and then (decide.control_every), the incumbent's drift over the run
(research/judging/drift.py), and the report's noise section that says both (research/reporting/noise_summary.py)."""
from __future__ import annotations

import pytest

from research.judging.verdict import experiments_since_incumbent_ran, first_seed
from research.judging.drift import incumbent_drift
from research.reporting.noise_summary import noise_lines
from research.judging.pairing import format_runs


def run_rows(discards: int, incumbent_runs_at: dict[int, dict[int, float]] | None = None):
    """Two baselines, then `discards` candidates paired on seed 43; `incumbent_runs_at`: the default block's new
    runs recorded by the candidate at that experiment."""
    rows = [{"exp": i, "status": "baseline", "seed": 42 + i, "val_bpb": 1.0 + 0.01 * i,
             "seed_runs": format_runs({42 + i: 1.0 + 0.01 * i}), "seed_speeds": format_runs({42 + i: 51.0 - i})}
            for i in range(2)]
    for exp in range(2, 2 + discards):
        runs = (incumbent_runs_at or {}).get(exp, {})
        rows.append({"exp": exp, "status": "discard", "seed": 43, "paired_exp": 0, "change_kind": "optimizer",
                     "seed_runs": format_runs({43: 1.02}), "incumbent_runs": format_runs(runs)})
    return rows


@pytest.mark.parametrize("discards, control", [(9, False), (10, True)])
def test_a_control_run_comes_when_the_incumbent_has_not_run_for_control_every_experiments(discards, control):
    rows = run_rows(discards)
    assert experiments_since_incumbent_ran(rows) == discards
    assert first_seed(rows, 42, control_every=10) == (44 if control else 43)
    assert first_seed(rows, 42, control_every=0) == 43


def test_an_incumbent_run_for_a_pair_resets_the_count():
    rows = run_rows(12, {8: {44: 1.003}})
    assert experiments_since_incumbent_ran(rows) == 5 and first_seed(rows, 42, control_every=10) == 44


def test_drift_is_the_trend_of_a_configs_runs_over_the_experiments_that_recorded_them():
    # The default block's runs: 1.00 and 1.01 at exps 0-1, then 1.03 at exp 11 and 1.04 at exp 21: rising.
    rows = run_rows(20, {11: {44: 1.03}, 21: {45: 1.04}})
    drift = incumbent_drift(rows)
    assert drift.span == 21 and drift.runs == 4  # the 20 candidates ran once each: no trend of their own
    xs, ys = [0, 1, 11, 21], [1.0, 1.01, 1.03, 1.04]
    mx, my = sum(xs) / 4, sum(ys) / 4
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert drift.moved == pytest.approx(slope * 21) and drift.moved > 0 and drift.se is not None
    # The two baselines alone are the default block's seed noise, not a trend: a config run at three moments is.
    assert incumbent_drift(run_rows(3)) is None
    assert incumbent_drift(run_rows(12, {11: {44: 1.03}})).runs == 3


def test_the_reports_noise_section_says_the_speed_the_slope_and_the_drift():
    settings = {"sequential": {"prior_df": 1, "kind_prior_df": 2, "unpaired_kinds": ["shape"]},
                "speed": {"adjust": True, "prior_slope": -0.059, "prior_runs": 4}}
    unadjusted = "\n".join(noise_lines(run_rows(12, {11: {44: 1.03}}), {**settings, "speed": {"adjust": False}}))
    # sqrt(2) x the seed sd of the default block's runs 1.00, 1.01, 1.03 (0.015275): the prior, no pairs measured
    assert "Paired noise (sd of a pair's gain), pooled: 0.021602 (0 df measured)" in unadjusted
    lines = "\n".join(noise_lines(run_rows(12, {11: {44: 1.03}}), settings))
    assert "By kind of change: optimizer" in lines
    # The slower baseline scored worse: the slope moves from the prior -0.059 toward theirs (-0.5 per unit ln speed).
    assert "50.0 to 51.0 GFLOP/s" in lines and "paired gains adjusted by -0.2" in lines
    assert "Drift: the re-run configs' val_bpb moved +" in lines and "from experiment 0 to 11" in lines
    off = "\n".join(noise_lines(run_rows(2), {**settings, "speed": {"adjust": False}}))
    assert "not taken out" in off and noise_lines(run_rows(0)[:1], settings) == []
