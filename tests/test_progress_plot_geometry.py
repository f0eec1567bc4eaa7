"""The plot's geometry as numbers (research/reporting/progress_plot.py's pure functions): the best-so-far staircase, the best
each experiment was judged against, the val_bpb axis and what is off it, the hours panel's points and where the
verified diamond goes. No figure is drawn: these are the figures' coordinates, worked out by hand. The drawn figure
is read in tests/test_progress_plot.py."""
from __future__ import annotations

import math

import pytest

from research.judging.finalize import Paired
from research.reporting.progress_plot import (YScale, _listed, _measured, _short, best_before, best_so_far, hours_points,
                                    verified_marker, y_scale)

ROWS = [
    {"exp": 0, "status": "baseline", "val_bpb": 1.00, "seed_runs": "42:1.0", "train_seconds": 360.0},
    {"exp": 1, "status": "baseline", "val_bpb": 1.02, "seed_runs": "43:1.02", "train_seconds": 360.0},
    {"exp": 2, "status": "discard", "val_bpb": 1.03, "seed_runs": "43:1.03", "train_seconds": 360.0},
    {"exp": 3, "status": "keep", "val_bpb": 0.99, "best_val_bpb": 0.995, "seed_runs": "43:0.99 42:1.0",
     "train_seconds": 360.0},
    {"exp": 4, "status": "crash", "val_bpb": None, "train_seconds": 360.0},
    {"exp": 5, "status": "keep", "val_bpb": 0.98, "seed_runs": "43:0.98", "train_seconds": 360.0},
    {"exp": 6, "status": "skip", "train_seconds": 360.0},
]


def test_the_staircase_starts_at_the_baselines_mean_and_steps_down_at_keeps():
    # After the last baseline (exp 1) at mean 1.01; exp 3 at its recorded best (0.995, the mean of its runs), exp 5
    # at its val_bpb (no best recorded).
    assert best_so_far(ROWS) == [(1, pytest.approx(1.01)), (3, 0.995), (5, 0.98)]
    # A keep before the last baseline is not a step; a baseline that is not a number is not a baseline.
    early = [{"exp": 0, "status": "keep", "val_bpb": 0.5}, {"exp": 1, "status": "baseline", "val_bpb": 1.0},
             {"exp": 2, "status": "baseline", "val_bpb": math.nan}, {"exp": 3, "status": "keep", "val_bpb": None,
                                                                       "best_val_bpb": "nan"}]
    assert best_so_far(early) == [(1, 1.0)]
    assert best_so_far([{"exp": 0, "status": "crash"}]) == []


def test_each_experiment_is_judged_against_the_best_before_it():
    assert best_before(ROWS, best_so_far(ROWS)) == {2: pytest.approx(1.01), 3: pytest.approx(1.01), 4: 0.995,
                                                    5: 0.995, 6: 0.98}


def test_the_axis_holds_what_must_be_shown_and_puts_far_points_off_scale():
    # Span of the must-show values 0.01 (their mean's 1% is 0.01005, the larger): reach 3 spans beyond them.
    scale = y_scale([1.00, 1.01], [0.0, 0.969, 0.97, 0.99, 1.04, 1.041, 9.0])
    # Reach: 1.00 - 3 x 0.01005 = 0.96985 to 1.01 + 0.03015 = 1.04015: 0.97 and 1.04 on, 0.969 and 1.041 off.
    assert scale.low == 0.97 and scale.high == 1.04
    assert scale.pad == pytest.approx(0.08 * 0.07)  # 8% of what is on scale (0.07, more than one span)
    assert scale.limits == (pytest.approx(0.97 - 0.0056), pytest.approx(1.04 + 0.0056))
    assert [scale.off_side(v) for v in (0.0, 0.969, 0.97, 1.04, 1.041)] == ["below", "below", None, None, "above"]
    assert scale.edge("above") == pytest.approx(1.04 + 0.0028) and scale.edge("below") == pytest.approx(0.97 - 0.0028)


def test_the_axis_of_one_value_and_of_no_baseline():
    one = y_scale([2.0], [])
    assert (one.low, one.high, one.pad) == (2.0, 2.0, pytest.approx(0.08 * 0.02))  # span: 1% of 2.0
    zero = y_scale([0.0], [])
    assert zero.pad == pytest.approx(0.08 * 1e-6)  # nothing to scale by: the smallest span
    # No must-show values (the baselines crashed): the median of the rest is the core, 1% of it the span.
    median = y_scale([], [1.0, 1.005, 5.0])
    assert (median.low, median.high) == (1.0, 1.005) and median.off_side(5.0) == "above"
    assert y_scale([], []) is None
    assert YScale(1.0, 2.0, 0.5).limits == (0.5, 2.5)


def test_the_hours_panel_and_the_verified_diamond():
    # Trainings: 1 + 1 + 1 + 2 + 1 + 1 (+ 0 for the skip), 360 s each; the line starts after the baselines (0.2 h).
    points = hours_points(ROWS)
    assert points == [(pytest.approx(0.2), pytest.approx(1.01)), (pytest.approx(0.3), pytest.approx(1.01)),
                      (pytest.approx(0.5), 0.995), (pytest.approx(0.6), 0.995), (pytest.approx(0.7), 0.98),
                      (pytest.approx(0.7), 0.98)]
    # The diamond: at the last hour, the baselines' mean minus the gain (not the final best minus the gain).
    assert verified_marker(points, Paired(0.012, 0.002, 4)) == (pytest.approx(0.7), pytest.approx(0.998), 0.002)
    assert verified_marker(points, Paired(0.012, None, 1)) == (pytest.approx(0.7), pytest.approx(0.998), 0.0)
    assert verified_marker(points, None) is None and verified_marker(points, Paired(None, None, 0)) is None
    assert verified_marker([], Paired(0.012, 0.002, 4)) is None
    assert hours_points([{"exp": 0, "status": "crash", "train_seconds": 10.0}]) == []


def test_labels_and_legend_lists():
    assert _short("  a   b\nc ") == "a b c" and _short("x" * 40) == "x" * 31 + "…" and _short(None) == ""
    assert _short("y" * 32) == "y" * 32
    assert _listed([(i, 1.0 + i / 10) for i in range(6)]) == (
        "exp 0 1.0000, exp 1 1.1000, exp 2 1.2000, exp 3 1.3000, +2 more")
    assert _listed([(7, 8.0)]) == "exp 7 8.0000"
    values = {row["exp"]: row.get("val_bpb") for row in ROWS}
    assert _measured(ROWS, values, "keep") == [0.99, 0.98] and _measured(ROWS, values, "crash") == []


def test_geometry_at_its_edges():
    # A keep right after a single baseline is a step.
    rows = [{"exp": 0, "status": "baseline", "val_bpb": 1.0}, {"exp": 1, "status": "keep", "val_bpb": 0.9}]
    assert best_so_far(rows) == [(0, 1.0), (1, 0.9)]
    # The core's own range sets the span when it is wider than 1% of its mean: 1.0 to 2.0 reaches -2.0 to 5.0,
    # both ends included.
    scale = y_scale([1.0, 2.0], [-2.0, 5.0, -2.0001, 5.0001])
    assert (scale.low, scale.high) == (-2.0, 5.0) and scale.off_side(5.0001) == "above"
    wide = y_scale([1.0, 1.5], [2.5])
    assert wide.high == 2.5  # within 3 x 0.5 of 1.5 (1% of the mean, 0.0125, would put it off scale)
    assert _listed([(i, 1.0) for i in range(4)]) == "exp 0 1.0000, exp 1 1.0000, exp 2 1.0000, exp 3 1.0000"


def test_the_diamond_starts_from_the_baselines_even_when_the_first_experiment_is_a_keep():
    rows = [row for row in ROWS if row["exp"] != 2 and row["status"] != "skip"]  # exp 3 keeps right after them
    points = hours_points(rows)
    assert points[0] == (pytest.approx(0.2), pytest.approx(1.01)) and points[1] == (pytest.approx(0.4), 0.995)
    # The last point is the last training (no skip after it): 0.6 h.
    assert verified_marker(points, Paired(0.02, 0.001, 4)) == (pytest.approx(0.6), pytest.approx(0.99), 0.001)
