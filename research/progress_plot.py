"""progress.png: what a run found, readable at a glance the next morning.

Left, val_bpb per experiment: the baselines as the band of seed noise they are (mean +- 1 sd), the best so far,
the keep line (research/keep_line.py) and the band between them shaded: a point inside it was better than the
best but within the noise, so it was not kept. Kept points carry their change; crashes sit on the top edge.
Right, best val_bpb against cumulative training hours (how a night's progress compares across systems), and
the verified gain with its standard error once `autoresearch finalize` has run.

matplotlib's object API with the Agg canvas (no pyplot): no global figure state, no GUI backend, safe inside a
Prefect worker thread.
"""
from __future__ import annotations

import io
import statistics

from research.decide import baseline_best, finite_or_none
from research.finalize import Paired
from research.keep_line import keep_lines
from research.run_costs import cumulative_training_hours

STATUS_COLORS = {"baseline": "#1f3b73", "keep": "#2ca02c", "discard": "#9a9a9a", "skip": "#d9b44a", "crash": "#d62728"}
NOISE_COLOR, BAND_COLOR, LINE_COLOR, VERIFIED_COLOR = "#8fb3e0", "#c7e9c0", "#1a7a1a", "#7b3294"
FIGURE_SIZE_IN = (14.0, 6.0)
FIGURE_DPI = 100  # 1400 x 600 pixels
LABEL_CHARS = 32


def _short(text, width: int = LABEL_CHARS) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def best_so_far(rows: list[dict]) -> list[tuple[int, float]]:
    """(exp, best val_bpb from there on) for the staircase: it starts after the last baseline at the baselines'
    mean (the reference every keep is judged against) and only ever steps down, at keeps."""
    baselines = [(row["exp"], finite_or_none(row.get("val_bpb"))) for row in rows if row.get("status") == "baseline"]
    baselines = [(exp, val) for exp, val in baselines if val is not None]
    if not baselines:
        return []
    points = [(baselines[-1][0], baseline_best([val for _, val in baselines]))]
    for row in rows:
        if row["exp"] > points[0][0] and row.get("status") == "keep":
            recorded = finite_or_none(row.get("best_val_bpb"))
            best = recorded if recorded is not None else finite_or_none(row.get("val_bpb"))
            if best is not None:
                points.append((row["exp"], best))
    return points


def best_before(rows: list[dict], staircase: list[tuple[int, float]]) -> dict[int, float]:
    """{exp: the best val_bpb when it started} for every experiment after the baselines."""
    values = {}
    for row in rows:
        earlier = [best for exp, best in staircase if exp < row["exp"]]
        if earlier:
            values[row["exp"]] = earlier[-1]
    return values


def _y_range(values: list[float], reference: float | None) -> tuple[float, float, float] | None:
    """(bottom, top, clip): a diverged run (val_bpb 8 next to 1.0) is clipped to `clip` and drawn as ^."""
    if not values:
        return None
    low = min(values)
    reference = reference if reference is not None else sorted(values)[len(values) // 2]
    span = max(reference - low, 0.01 * abs(reference), 1e-6)
    clip = min(max(values), reference + 3 * span)
    return low - 0.15 * span, clip + 0.3 * span, clip


def _draw_experiments(axes, rows: list[dict], settings: dict | None) -> None:
    values = {row["exp"]: finite_or_none(row.get("val_bpb")) for row in rows}
    staircase = best_so_far(rows)
    before = best_before(rows, staircase)
    y_range = _y_range([v for v in values.values() if v is not None], staircase[0][1] if staircase else None)
    clip = y_range[2] if y_range else None
    if y_range:
        axes.set_ylim(y_range[0], y_range[1])

    baselines = [values[row["exp"]] for row in rows if row.get("status") == "baseline" and values[row["exp"]] is not None]
    if len(baselines) >= 2:
        mean, sd = statistics.fmean(baselines), statistics.stdev(baselines)
        axes.axhspan(mean - sd, mean + sd, color=NOISE_COLOR, alpha=0.35, zorder=0, linewidth=0,
                     label=f"baselines: mean +- 1 sd ({sd:.4f}, seed noise)")

    if before:
        xs = sorted(before)
        last = rows[-1]["exp"]
        # Experiment x spans [x - 0.5, x + 0.5] at the best it was judged against, like the band below it; a keep
        # lowers the line from x + 0.5 on, and the last half step shows where the run ends.
        edges = [x - 0.5 for x in xs] + [last + 0.5, last + 1.0]
        axes.stairs([before[x] for x in xs] + [staircase[-1][1]], edges, baseline=None, color=LINE_COLOR,
                    linewidth=1.6, zorder=2, label="best so far")
        lines = keep_lines(rows, before, settings) if settings else {}
        if lines:
            line_xs = sorted(lines)
            edges = [x - 0.5 for x in line_xs] + [line_xs[-1] + 0.5]
            keep_ys = [lines[x] for x in line_xs]
            top_ys = [before[x] for x in line_xs]
            axes.stairs(keep_ys, edges, baseline=None, color=LINE_COLOR, linestyle="--", linewidth=1.1, zorder=2,
                        label="keep line (what a first run had to beat)")
            axes.stairs(top_ys, edges, baseline=keep_ys, fill=True, color=BAND_COLOR, alpha=0.6, zorder=1,
                        label="inside the noise: better, not kept")

    for status in ("baseline", "discard", "keep"):
        points = [(row["exp"], values[row["exp"]]) for row in rows if row.get("status") == status
                  and values[row["exp"]] is not None]
        if not points:
            continue
        inside = [(x, y) for x, y in points if clip is None or y <= clip]
        above = [(x, clip) for x, y in points if clip is not None and y > clip]
        size = 60 if status in ("keep", "baseline") else 25
        if inside:
            axes.scatter(*zip(*inside), c=STATUS_COLORS[status], s=size, zorder=3, edgecolors="none", label=status)
        if above:
            axes.scatter(*zip(*above), c=STATUS_COLORS[status], s=size, zorder=3, marker="^", edgecolors="none")

    for row in (row for row in rows if row.get("status") == "keep"):
        value = values[row["exp"]]
        if value is None:
            continue
        # To the left of the point, at its height: that strip lies under the band the kept run had to clear (the
        # incumbent's keep line was above it), and earlier keeps sit higher, so labels neither cover points nor
        # each other.
        axes.annotate(_short(row.get("change") or row.get("description")), (row["exp"], min(value, clip or value)),
                      xytext=(-7, 0), textcoords="offset points", fontsize=7, ha="right", va="center",
                      color="#145214", zorder=5)

    crashes = [row["exp"] for row in rows if row.get("status") == "crash"]
    if crashes:
        # x in data units, y in axes units: crashes have no val_bpb, so they sit along the top edge.
        axes.scatter(crashes, [0.97] * len(crashes), marker="x", c=STATUS_COLORS["crash"], s=40,
                     transform=axes.get_xaxis_transform(), label=f"crash ({len(crashes)})", zorder=4)

    axes.set_xlabel("experiment")
    axes.set_ylabel("val_bpb (lower is better)")
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        # Lower left: a run's points fall from upper left to lower right, so that corner stays empty.
        axes.legend(loc="lower left", fontsize=7, framealpha=0.85)


def _draw_hours(axes, rows: list[dict], verified: Paired | None) -> None:
    staircase = dict(best_so_far(rows))
    hours = cumulative_training_hours(rows)
    points, best = [], None
    for exp, spent in hours:  # the best after each experiment, from the end of the last baseline on
        best = staircase.get(exp, best)
        if best is not None:
            points.append((spent, best))
    if points:
        axes.step(*zip(*points), where="post", color=LINE_COLOR, linewidth=1.6, label="best val_bpb")
        axes.plot(*points[-1], "o", color=LINE_COLOR, markersize=4)  # the best at the end, even when it came last
        start = points[0][1]
        axes.axhline(start, color=STATUS_COLORS["baseline"], linestyle=":", linewidth=1, label="baseline mean")
        if verified is not None and verified.mean is not None:
            error = verified.se if verified.se is not None else 0.0
            axes.errorbar([points[-1][0]], [start - verified.mean], yerr=[error], fmt="D", color=VERIFIED_COLOR,
                          capsize=5, zorder=4, label=f"verified: baseline - {verified.mean:.4f} +- {error:.4f} "
                                                     f"({verified.pairs} fresh seeds)")
    axes.set_xlabel("cumulative training hours")
    axes.set_ylabel("best val_bpb")
    axes.set_title("best val_bpb per training hour", fontsize=10)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower left", fontsize=7, framealpha=0.85)  # the best falls from upper left: that corner is free


def progress_figure(rows: list[dict], title: str, settings: dict | None = None, verified: Paired | None = None):
    """The figure (tests read its lines and labels). `settings`: the run's `decide` block, for the keep line;
    `verified`: finalize's gain."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = sorted(rows, key=lambda row: row["exp"])
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.3, 1]})
    _draw_experiments(left, rows, settings)
    left.set_title(title)
    _draw_hours(right, rows, verified)
    figure.tight_layout()
    return figure


def plot_progress(rows: list[dict], title: str, settings: dict | None = None, verified: Paired | None = None) -> bytes:
    """progress.png's bytes."""
    buffer = io.BytesIO()
    progress_figure(rows, title, settings, verified).savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()
