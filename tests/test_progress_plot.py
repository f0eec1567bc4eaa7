"""progress.png carries what a reader needs: the baselines' noise band, the best so far, the keep line and the
band inside the noise, each keep labelled with its change, crashes on the top edge, and on the right the best
against cumulative training hours with finalize's verified gain. Read from the figure's artists, on a
100-experiment ledger the real decision rule produced (bench/synthetic_ledger.py)."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from research.finalize import Paired
from research.finalize_table import FinalizeTable
from research.layout import RunLayout
from research.progress_plot import best_so_far, plot_progress, progress_figure
from research.report import write_report
from research.run_costs import verified_gain
from research.run_settings import decide_settings, save_run_settings
from bench.synthetic_ledger import synthetic_ledger

DEFAULTS = decide_settings("/nonexistent/settings.json")  # conf/config.yaml's decide block


@pytest.fixture(scope="module")
def rows():
    return synthetic_ledger(100)


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
    assert f"crash ({len(crashes)})" in legend
    assert sorted(_artist(left, "crash").get_offsets()[:, 0]) == crashes

    keeps = [row for row in rows if row["status"] == "keep"]
    labels = [(text.get_text(), text.xy[0]) for text in left.texts]
    assert labels == [(row["change"], row["exp"]) for row in keeps]

    keep_line = _artist(left, "keep line").get_data()
    band = _artist(left, "inside the noise").get_data()
    assert len(keep_line.values) == len(band.values) > 80
    # The band runs from the keep line up to the best so far: a real margin under every experiment.
    assert np.all(band.baseline == keep_line.values) and np.all(band.values > keep_line.values)
    best = _artist(left, "best so far").get_data()  # the band's top edge, plus the final best after the last one
    assert np.all(best.values[:-1] == band.values) and np.all(best.edges[:-1] == keep_line.edges)
    assert best.values[-1] == pytest.approx(best_so_far(rows)[-1][1])


def test_the_keep_line_follows_the_runs_decide_settings(rows):
    left, _ = progress_figure(rows, "t", DEFAULTS, None).axes
    stricter = {**DEFAULTS, "sequential": {**DEFAULTS["sequential"], "alpha": 0.001}}
    strict_left, _ = progress_figure(rows, "t", stricter, None).axes
    assert np.all(_artist(strict_left, "keep line").get_data().values < _artist(left, "keep line").get_data().values)


def test_the_hours_panel_ends_at_the_best_after_all_training_hours_and_shows_the_verified_gain(rows):
    _, right = progress_figure(rows, "t", DEFAULTS, Paired(0.012, 0.002, 4)).axes
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
