"""progress.png carries what a reader needs: the baselines' noise band, the best so far, the keep line and the
band inside the noise, each keep labelled with its change, crashes on the top edge, and on the right the best
against cumulative training hours with finalize's verified gain. Read from the figure's artists: on a
100-experiment ledger the real decision rule produced (bench/synthetic_ledger.py), and, for its geometry (what
lies inside the axes, what the legend covers, where the diamond sits), on the real-shaped ledgers of
tests/plot_ledgers.py: the fresh clone's first run, a run that kept nothing, one with crashes and keeps, and a
ledger a real `autoresearch run` on the defaults wrote (tests/ledgers/)."""
from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch

from research.judging.verdict import baseline_best
from research.judging.finalize import Paired
from research.records.finalize_table import FinalizeTable
from research.judging.keep_line import keep_lines
from research.records.layout import RunLayout
from research.reporting.progress_plot import best_before, best_so_far, plot_progress, progress_figure, y_scale
from research.reporting.report import write_report
from research.reporting.run_costs import verified_gain
from research.records.run_settings import save_run_settings
from tests.plot_ledgers import DEFAULTS, LEDGERS, crashes_and_keeps_run, fresh_clone_run

VERIFIED = Paired(0.012, 0.002, 4)
PIXEL = 1.0  # slack for points drawn exactly on an edge


@pytest.fixture(scope="module")
def rows():
    return LEDGERS["100 rows"]()


@pytest.fixture(scope="module", params=sorted(LEDGERS))
def ledger(request):
    """(rows, the figure drawn from them with a verified gain, its renderer), once per real-shaped ledger."""
    rows = LEDGERS[request.param]()
    figure = progress_figure(rows, request.param, DEFAULTS, VERIFIED)
    return rows, figure, figure.canvas.get_renderer()


def _legend(axes) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


def _artist(axes, label: str):
    return next(artist for artist in axes.get_children() if str(artist.get_label()).startswith(label))


def test_the_experiments_panel_shows_noise_best_keep_line_keeps_and_crashes(rows):
    left, _ = progress_figure(rows, "t", DEFAULTS, None).axes
    legend = _legend(left)
    for label in ("baselines: mean +- 1 sd", "best so far", "keep line", "inside the noise", "baseline", "discard", "keep"):
        assert any(entry.startswith(label) for entry in legend), (label, legend)
    crashes = [row["exp"] for row in rows if row["status"] == "crash"]
    assert f"crash ({len(crashes)}, no val_bpb)" in legend
    assert sorted(_artist(left, "crash").get_offsets()[:, 0]) == crashes

    keeps = [row for row in rows if row["status"] == "keep"]
    labels = [(text.get_text(), text.xy[0]) for text in left.texts]
    assert labels == [(row["change"], row["exp"]) for row in keeps]

    keep_line = _artist(left, "keep line").get_data()
    band = _artist(left, "inside the noise").get_data()
    assert len(keep_line.values) == len(band.values) > 80
    # The band runs from the keep line up to the best so far: a real margin under every judged experiment.
    shaded = ~np.isnan(band.values)
    assert np.all(band.baseline == keep_line.values) and np.all(band.values[shaded] > keep_line.values[shaded])
    best = _artist(left, "best so far").get_data()  # the band's top edge, plus the final best after the last one
    assert np.all(best.values[:-1][shaded] == band.values[shaded]) and np.all(best.edges[:-1] == keep_line.edges)
    assert best.values[-1] == pytest.approx(best_so_far(rows)[-1][1])


def test_the_keep_line_follows_the_runs_decide_settings(rows):
    left, _ = progress_figure(rows, "t", DEFAULTS, None).axes
    stricter = {**DEFAULTS, "sequential": {**DEFAULTS["sequential"], "alpha": 0.001}}
    strict_left, _ = progress_figure(rows, "t", stricter, None).axes
    assert np.all(_artist(strict_left, "keep line").get_data().values < _artist(left, "keep line").get_data().values)


def test_the_hours_panel_ends_at_the_best_after_all_training_hours_and_shows_the_verified_gain(rows):
    _, right = progress_figure(rows, "t", DEFAULTS, VERIFIED).axes
    assert right.get_xlabel() == "cumulative training hours"
    xs, ys = _artist(right, "best val_bpb").get_data()
    trainings = sum(1 if row["status"] == "crash" else len(str(row.get("seed_runs") or "").split())
                    + len(str(row.get("incumbent_runs") or "").split()) for row in rows if row["status"] != "skip")
    assert xs[-1] == pytest.approx(trainings * 300 / 3600)
    assert ys[-1] == pytest.approx(best_so_far(rows)[-1][1]) and ys[0] == pytest.approx(best_so_far(rows)[0][1])
    assert any(entry.startswith("verified: baseline - 0.0120 +- 0.0020 (4 fresh seeds)") for entry in _legend(right))
    _, without = progress_figure(rows, "t", DEFAULTS, None).axes
    assert not any("verified" in entry for entry in _legend(without))


def test_write_report_draws_the_runs_saved_settings_and_finalizes_gain(tmp_path, rows):
    layout = RunLayout(tmp_path / "night")
    layout.root.mkdir()
    stricter = {**DEFAULTS, "sequential": {**DEFAULTS["sequential"], "alpha": 0.001}}
    save_run_settings(layout.settings, {"decide": stricter, "research": {"max_experiments": 100}})
    table = FinalizeTable(layout.finalize_table)
    for seed, (base, final) in enumerate([(1.000, 0.985), (1.002, 0.986), (0.999, 0.985), (1.001, 0.987)], 1000):
        table.record({"arm": "baseline", "seed": seed, "val_bpb": base})
        table.record({"arm": "final", "seed": seed, "val_bpb": final})
    md_path, png_path = write_report(layout.root, rows, {}, {}, {})
    image = matplotlib.image.imread(png_path)
    assert image.shape[:2] == (600, 1400) and image[..., :3].std() > 0.05
    # Drawn with the settings the run saved (not the defaults) and finalize.tsv's gain.
    verified = verified_gain(layout.finalize_table)
    assert verified.mean == pytest.approx(0.01475) and verified.pairs == 4
    assert png_path.read_bytes() == plot_progress(rows, "autoresearch: night", stricter, verified)
    assert png_path.read_bytes() != plot_progress(rows, "autoresearch: night", DEFAULTS, verified)
    text = md_path.read_text()
    assert "- Per 0.01 val_bpb of verified gain (0.014750):" in text


# --- geometry on real-shaped ledgers: every assertion reads where things landed, in pixels or axis limits ---

def _measured(rows: list[dict], *statuses: str) -> list[tuple[int, float]]:
    return [(row["exp"], row["val_bpb"]) for row in rows
            if row["status"] in statuses and row.get("val_bpb") is not None]


def _keep_line_values(rows: list[dict]) -> list[float]:
    staircase = best_so_far(rows)
    return list(keep_lines(rows, best_before(rows, staircase), DEFAULTS).values())


def _points_in_pixels(axes) -> np.ndarray:
    """Every marker and line vertex drawn in `axes` (scatter points, lines, the diamond and its caps, the
    staircases' corners), in display coordinates."""
    points = [np.empty((0, 2))]
    for artist in axes.get_children():
        if isinstance(artist, PathCollection):
            points.append(artist.get_offset_transform().transform(artist.get_offsets()))
        elif isinstance(artist, Line2D):
            points.append(artist.get_transform().transform(artist.get_xydata()))
        elif isinstance(artist, StepPatch):
            points.append(artist.get_transform().transform(artist.get_path().vertices))
    return np.concatenate(points)


def _inside(box, xy: np.ndarray, slack: float = 0.0) -> np.ndarray:
    return ((xy[:, 0] >= box.x0 - slack) & (xy[:, 0] <= box.x1 + slack)
            & (xy[:, 1] >= box.y0 - slack) & (xy[:, 1] <= box.y1 + slack))


def test_the_ledgers_are_what_their_names_say():
    """The geometry below means something only if the test data keeps its shape under the rule of the day."""
    statuses = {name: [row["status"] for row in make()] for name, make in LEDGERS.items()}
    assert statuses["fresh clone"] == ["baseline"] * 2 + ["discard"] * 4
    assert "keep" not in statuses["nothing kept"]
    assert {"keep", "crash", "skip", "discard"} <= set(statuses["crashes and keeps"])
    assert len(statuses["100 rows"]) == 100 and {"keep", "crash"} <= set(statuses["100 rows"])
    assert statuses["recorded cpu run"][:2] == ["baseline"] * 2 and len(statuses["recorded cpu run"]) == 6


def test_a_point_far_beyond_what_must_be_shown_is_off_scale_on_its_side():
    scale = y_scale([1.00, 1.01], [0.0, 0.99, 1.03, 9.0])
    assert [scale.off_side(value) for value in (0.0, 0.99, 1.00, 1.03, 9.0)] == ["below", None, None, None, "above"]
    bottom, top = scale.limits
    assert bottom < scale.edge("below") < 0.99 and 1.03 < scale.edge("above") < top


def test_the_axis_holds_every_baseline_keep_the_best_and_the_keep_line(ledger):
    rows, figure, _ = ledger
    left = figure.axes[0]
    bottom, top = left.get_ylim()
    must_show = ([value for _, value in _measured(rows, "baseline", "keep")] + [best for _, best in best_so_far(rows)]
                 + _keep_line_values(rows))
    assert must_show and all(bottom < value < top for value in must_show), (bottom, top, must_show)
    keep_line = _artist(left, "keep line").get_data().values
    assert np.all((keep_line > bottom) & (keep_line < top))


def test_the_fresh_clones_first_run_shows_all_six_points_and_its_keep_line():
    """The run that misled a new user: the keep line 0.31 under the best lay below the axis."""
    rows = fresh_clone_run()
    assert [row["status"] for row in rows] == ["baseline"] * 2 + ["discard"] * 4
    left = progress_figure(rows, "t", DEFAULTS, None).axes[0]
    bottom, top = left.get_ylim()
    assert all(bottom < value < top for _, value in _measured(rows, "baseline", "discard"))
    assert not any(entry.startswith(("above the axis", "below the axis")) for entry in _legend(left))
    assert _artist(left, "keep line").get_data().values[0] > bottom


def test_every_point_and_label_lies_inside_its_axes(ledger):
    _, figure, renderer = ledger
    for axes in figure.axes:
        points = _points_in_pixels(axes)
        outside = points[~_inside(axes.get_window_extent(renderer), points, PIXEL)]
        assert len(points) and not len(outside), (axes.get_title(), outside)
    left = figure.axes[0]
    for label in left.texts:  # each keep's change, readable inside the panel
        box = label.get_window_extent(renderer)
        assert _inside(left.get_window_extent(renderer), np.array([[box.x0, box.y0], [box.x1, box.y1]])).all(), label


def test_no_legend_covers_a_point_or_a_panel_and_each_stays_on_the_figure(ledger):
    _, figure, renderer = ledger
    points = np.concatenate([_points_in_pixels(axes) for axes in figure.axes])
    figure_box = figure.bbox
    for axes in figure.axes:
        legend = axes.get_legend().get_window_extent(renderer)
        assert not _inside(legend, points).any(), axes.get_title()
        assert not any(legend.overlaps(other.get_window_extent(renderer)) for other in figure.axes)
        assert not legend.overlaps(axes.xaxis.label.get_window_extent(renderer))
        assert figure_box.x0 <= legend.x0 and legend.x1 <= figure_box.x1 and figure_box.y0 <= legend.y0


def test_off_scale_points_are_drawn_at_the_edge_and_listed_with_their_values(ledger):
    rows, figure, _ = ledger
    left = figure.axes[0]
    bottom, top = left.get_ylim()
    off = [(exp, value) for exp, value in _measured(rows, "baseline", "keep", "discard") if not bottom < value < top]
    entries = [entry for entry in _legend(left) if entry.startswith("above the axis")]
    if not off:
        assert not entries
        return
    assert all(value > top for _, value in off)  # the ledgers' diverged runs lie above
    assert entries == [f"above the axis ({len(off)}), drawn at its edge: "
                       + ", ".join(f"exp {exp} {value:.4f}" for exp, value in off)]
    markers = _artist(left, "above the axis").get_offsets()
    assert [exp for exp, _ in off] == list(markers[:, 0])
    assert np.all((markers[:, 1] > bottom) & (markers[:, 1] < top))


def test_a_diverged_run_does_not_squash_the_rest():
    rows = crashes_and_keeps_run()
    bottom, top = progress_figure(rows, "t", DEFAULTS, None).axes[0].get_ylim()
    assert max(value for _, value in _measured(rows, "discard")) == 11.0 and top < 1.1


def test_the_noise_band_is_shaded_only_under_judged_experiments(ledger):
    rows, figure, _ = ledger
    band = _artist(figure.axes[0], "inside the noise").get_data()
    # Each stair spans its experiment's [x - 0.5, x + 0.5].
    shaded = {int(edge + 0.5): not math.isnan(value) for edge, value in zip(band.edges, band.values)}
    judged = {row["exp"]: row["status"] in ("keep", "discard") for row in rows if row["exp"] in shaded}
    assert shaded == judged and any(shaded.values())
    assert np.all(band.baseline < np.nan_to_num(band.values, nan=np.inf))  # the line under the best, never above


def test_the_verified_diamond_sits_at_the_baseline_mean_minus_the_gain_with_its_error(ledger):
    rows, figure, _ = ledger
    right = figure.axes[1]
    diamond, caps, _ = right.containers[0].lines
    expected = baseline_best([value for _, value in _measured(rows, "baseline")]) - VERIFIED.mean
    assert diamond.get_marker() == "D" and diamond.get_ydata()[0] == pytest.approx(expected)
    assert sorted(cap.get_ydata()[0] for cap in caps) == pytest.approx([expected - VERIFIED.se, expected + VERIFIED.se])
    bottom, top = right.get_ylim()
    assert bottom < expected - VERIFIED.se and expected + VERIFIED.se < top


def test_the_verified_diamond_on_a_ledger_worked_by_hand():
    """Baselines 1.00 and 1.02 (mean 1.01), a keep at 0.99 and a verified gain 0.012 +- 0.002: the diamond at
    1.01 - 0.012 = 0.998 (from the baselines, not from the best at the end), its caps at 0.996 and 1.000, at the
    last experiment's training hours (three trainings of 600 s: 0.5 h)."""
    rows = [{"exp": 0, "status": "baseline", "val_bpb": 1.00, "seed_runs": "42:1.0", "train_seconds": 600.0},
            {"exp": 1, "status": "baseline", "val_bpb": 1.02, "seed_runs": "43:1.02", "train_seconds": 600.0},
            {"exp": 2, "status": "keep", "val_bpb": 0.99, "best_val_bpb": 0.99, "seed_runs": "43:0.99",
             "train_seconds": 600.0, "change": "optim.lr=0.05"},
            {"exp": 3, "status": "skip", "train_seconds": 600.0}]
    _, right = progress_figure(rows, "t", None, Paired(0.012, 0.002, 4)).axes
    diamond, caps, bars = right.containers[0].lines
    assert diamond.get_xydata().tolist() == [[0.5, pytest.approx(0.998)]]
    assert sorted(cap.get_ydata()[0] for cap in caps) == [pytest.approx(0.996), pytest.approx(1.0)]
    assert [cap.get_xdata()[0] for cap in caps] == [0.5, 0.5]
    xs, ys = _artist(right, "best val_bpb").get_data()
    # From the end of the last baseline (two trainings) on; the skip adds no training hours.
    assert list(xs) == [pytest.approx(1200 / 3600), 0.5, 0.5]
    assert list(ys) == [pytest.approx(1.01), pytest.approx(0.99), pytest.approx(0.99)]
    assert _artist(right, "baseline mean").get_ydata()[0] == pytest.approx(1.01)
    # Without a standard error (one fresh seed) the diamond has no error bar to speak of: +- 0.
    _, single = progress_figure(rows, "t", None, Paired(0.012, None, 1)).axes
    assert sorted(cap.get_ydata()[0] for cap in single.containers[0].lines[1]) == [pytest.approx(0.998)] * 2
