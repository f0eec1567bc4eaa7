"""progress.png: what a run found, readable at a glance the next morning.

Left, val_bpb per experiment: the baselines as the band of seed noise they are (mean +- 1 sd), the best so far,
the keep line (research/judging/keep_line.py) and the band between them shaded under each judged proposal: a point inside
it was better than the best but within the noise, so it was not kept. Kept points carry their change; crashes
sit on the top edge. The axis always holds the baselines, keeps, best and keep line (a first run's keep line can
lie far under every point); a point far beyond them (a diverged run) is drawn at the edge and listed in the
legend with its value. Right, best val_bpb against cumulative training hours (how a night's progress compares
across systems), and the verified gain with its standard error once `autoresearch finalize` has run. Both
legends sit under their panels: inside, one covered some run's points wherever it was put.

matplotlib's object API with the Agg canvas (no pyplot): no global figure state, no GUI backend, safe inside a
Prefect worker thread.
"""
from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass

from research.judging.verdict import baseline_best, finite_or_none
from research.judging.finalize import Paired
from research.judging.keep_line import keep_lines
from research.reporting.run_costs import cumulative_training_hours

STATUS_COLORS = {"baseline": "#1f3b73", "keep": "#2ca02c", "discard": "#9a9a9a", "skip": "#d9b44a", "crash": "#d62728"}
NOISE_COLOR, BAND_COLOR, LINE_COLOR, VERIFIED_COLOR = "#8fb3e0", "#c7e9c0", "#1a7a1a", "#7b3294"
FIGURE_SIZE_IN = (14.0, 6.0)
FIGURE_DPI = 100  # 1400 x 600 pixels
LABEL_CHARS = 32
POINT_STATUSES = ("baseline", "discard", "keep")  # the statuses with a val_bpb to draw
JUDGED = ("keep", "discard")  # a proposal measured against the keep line
OFF_SCALE_SPANS = 3.0  # how far beyond what must be shown a point may lie, in spans of it, before it is off scale
OFF_SCALE_MARKERS = {"above": "^", "below": "v"}
EDGE_PAD = 0.08  # the margin above and below the points, as a share of what is on scale
LEGEND_DROP = -0.1  # the legend's top edge, in axes heights: under the x axis's label


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


@dataclass(frozen=True)
class YScale:
    """The experiments panel's val_bpb axis. It holds whole what the reader must see (the baselines, keeps, the
    best so far and the keep line) and every other point near them; a point further out (a diverged run at 8
    next to 1.0) would squash the rest into a line, so it is off scale: drawn at the edge and listed in the legend."""
    low: float   # the lowest value on scale
    high: float  # the highest value on scale
    pad: float   # margin beyond both, where off-scale points are drawn

    @property
    def limits(self) -> tuple[float, float]:
        return self.low - self.pad, self.high + self.pad

    def off_side(self, value: float) -> str | None:
        """"above" or "below" for a value off scale, None for one on it."""
        return "above" if value > self.high else "below" if value < self.low else None

    def edge(self, side: str) -> float:
        """Where an off-scale value is drawn: halfway into the margin on its side."""
        return self.high + self.pad / 2 if side == "above" else self.low - self.pad / 2


def y_scale(must_show: list[float], others: list[float]) -> YScale | None:
    """`must_show` always on scale; `others` on scale within OFF_SCALE_SPANS spans of `must_show` (its span, or 1%
    of its value when it is one number). Without `must_show` (the baselines crashed) the median point is the core."""
    core = must_show or ([statistics.median(others)] if others else [])
    if not core:
        return None
    span = max(max(core) - min(core), 0.01 * abs(statistics.fmean(core)), 1e-6)
    reach = (min(core) - OFF_SCALE_SPANS * span, max(core) + OFF_SCALE_SPANS * span)
    shown = core + [value for value in others if reach[0] <= value <= reach[1]]
    low, high = min(shown), max(shown)
    return YScale(low, high, EDGE_PAD * max(high - low, span))


def _measured(rows: list[dict], values: dict[int, float | None], status: str) -> list[float]:
    return [values[row["exp"]] for row in rows if row.get("status") == status and values[row["exp"]] is not None]


def _listed(points: list[tuple[int, float]], most: int = 4) -> str:
    text = ", ".join(f"exp {exp} {value:.4f}" for exp, value in points[:most])
    return text + (f", +{len(points) - most} more" if len(points) > most else "")


def hours_points(rows: list[dict]) -> list[tuple[float, float]]:
    """(cumulative training hours, the best val_bpb after that experiment), from the end of the last baseline on."""
    staircase = dict(best_so_far(rows))
    points, best = [], None
    for exp, spent in cumulative_training_hours(rows):
        best = staircase.get(exp, best)
        if best is not None:
            points.append((spent, best))
    return points


def verified_marker(points: list[tuple[float, float]], verified: Paired | None) -> tuple[float, float, float] | None:
    """(x, y, error bar) of the verified gain's diamond on the hours panel: at the last training hour, the baselines'
    mean (where the best line starts) minus the gain, its standard error as the bar (0 without one)."""
    if not points or verified is None or verified.mean is None:
        return None
    return points[-1][0], points[0][1] - verified.mean, verified.se if verified.se is not None else 0.0


# The drawing below (artists, colours, labels, legends) is tested by tests/test_progress_plot.py reading the drawn
# figure, and left out of mutation testing (docs/MUTATION.md): each of its mutants would redraw every test figure.
# pragma: no mutate start
def _draw_noise(axes, baselines: list[float]) -> None:
    if len(baselines) >= 2:
        mean, sd = statistics.fmean(baselines), statistics.stdev(baselines)
        axes.axhspan(mean - sd, mean + sd, color=NOISE_COLOR, alpha=0.35, zorder=0, linewidth=0,
                     label=f"baselines: mean +- 1 sd ({sd:.4f}, seed noise)")


def _draw_best_and_keep_line(axes, rows: list[dict], staircase, before: dict[int, float],
                             lines: dict[int, float]) -> None:
    if not before:
        return
    xs = sorted(before)
    # Experiment x spans [x - 0.5, x + 0.5] at the best it was judged against, like the band below it; a keep
    # lowers the line from x + 0.5 on, and the last half step shows where the run ends.
    edges = [x - 0.5 for x in xs] + [rows[-1]["exp"] + 0.5, rows[-1]["exp"] + 1.0]
    axes.stairs([before[x] for x in xs] + [staircase[-1][1]], edges, baseline=None, color=LINE_COLOR,
                linewidth=1.6, zorder=2, label="best so far")
    if not lines:
        return
    line_xs = sorted(lines)
    edges = [x - 0.5 for x in line_xs] + [line_xs[-1] + 0.5]
    keep_ys = [lines[x] for x in line_xs]
    axes.stairs(keep_ys, edges, baseline=None, color=LINE_COLOR, linestyle="--", linewidth=1.1, zorder=2,
                label="keep line (what a first run had to beat)")
    # Shaded only under experiments whose proposal was measured against the line (NaN leaves a gap): under a
    # crash or a skip nothing could land in it.
    judged = {row["exp"] for row in rows if row.get("status") in JUDGED}
    top_ys = [before[x] if x in judged else math.nan for x in line_xs]
    axes.stairs(top_ys, edges, baseline=keep_ys, fill=True, color=BAND_COLOR, alpha=0.6, zorder=1,
                label="inside the noise: better, not kept")


def _draw_points(axes, rows: list[dict], values: dict[int, float | None], scale: YScale | None) -> None:
    """Each status in its colour; points off scale as ^ (above) or v (below) at the edge, listed in the legend."""
    measured = [row for row in rows if row.get("status") in POINT_STATUSES and values[row["exp"]] is not None]
    side = {row["exp"]: scale.off_side(values[row["exp"]]) if scale else None for row in measured}
    for status in POINT_STATUSES:
        points = [(row["exp"], values[row["exp"]]) for row in measured
                  if row["status"] == status and not side[row["exp"]]]
        if points:
            size = 60 if status in ("keep", "baseline") else 25
            axes.scatter(*zip(*points), c=STATUS_COLORS[status], s=size, zorder=3, edgecolors="none", label=status)
    for where, marker in OFF_SCALE_MARKERS.items():
        off = [row for row in measured if side[row["exp"]] == where]
        if off:
            axes.scatter([row["exp"] for row in off], [scale.edge(where)] * len(off), marker=marker,
                         c=[STATUS_COLORS[row["status"]] for row in off], s=45, zorder=3, edgecolors="black",
                         linewidths=0.5, label=f"{where} the axis ({len(off)}), drawn at its edge: "
                                               + _listed([(row["exp"], values[row["exp"]]) for row in off]))


def _label_keeps(axes, rows: list[dict], values: dict[int, float | None]) -> None:
    for row in rows:
        if row.get("status") == "keep" and values[row["exp"]] is not None:
            # To the left of the point, at its height: that strip lies under the band the kept run had to clear
            # (the incumbent's keep line was above it), and earlier keeps sit higher, so labels neither cover
            # points nor each other.
            axes.annotate(_short(row.get("change") or row.get("description")), (row["exp"], values[row["exp"]]),
                          xytext=(-7, 0), textcoords="offset points", fontsize=7, ha="right", va="center",
                          color="#145214", zorder=5)


def _keep_labels_inside(axes) -> None:
    """A label that would cross the axes' left edge (an early keep) goes to the right of its point instead."""
    renderer = axes.figure.canvas.get_renderer()
    left_edge = axes.get_window_extent(renderer).x0
    for label in axes.texts:
        if label.get_window_extent(renderer).x0 < left_edge:
            label.set_position((7, 0))
            label.set_horizontalalignment("left")


def _draw_crashes(axes, rows: list[dict]) -> None:
    crashes = [row["exp"] for row in rows if row.get("status") == "crash"]
    if crashes:
        # x in data units, y in axes units: crashes have no val_bpb, so they sit along the top edge.
        axes.scatter(crashes, [0.97] * len(crashes), marker="x", c=STATUS_COLORS["crash"], s=40,
                     transform=axes.get_xaxis_transform(), label=f"crash ({len(crashes)}, no val_bpb)", zorder=4)


def _legend_below(axes, columns: int) -> None:
    """Under the axes, never over them: a legend inside covered points wherever it sat on some run."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, LEGEND_DROP), ncol=columns, fontsize=7, frameon=False)


def _draw_experiments(axes, rows: list[dict], settings: dict | None) -> None:
    values = {row["exp"]: finite_or_none(row.get("val_bpb")) for row in rows}
    staircase = best_so_far(rows)
    before = best_before(rows, staircase)
    lines = keep_lines(rows, before, settings) if settings and before else {}
    baselines = _measured(rows, values, "baseline")
    must_show = baselines + _measured(rows, values, "keep") + [best for _, best in staircase] + list(lines.values())
    scale = y_scale(must_show, _measured(rows, values, "discard"))
    if scale:
        axes.set_ylim(*scale.limits)
    _draw_noise(axes, baselines)
    _draw_best_and_keep_line(axes, rows, staircase, before, lines)
    _draw_points(axes, rows, values, scale)
    _label_keeps(axes, rows, values)
    _draw_crashes(axes, rows)
    if rows:
        axes.set_xlim(rows[0]["exp"] - 1.0, rows[-1]["exp"] + 1.5)
    axes.set_xlabel("experiment")
    axes.set_ylabel("val_bpb (lower is better)")
    axes.grid(True, alpha=0.3)
    _legend_below(axes, columns=3)


def _draw_hours(axes, rows: list[dict], verified: Paired | None) -> None:
    points = hours_points(rows)
    if points:
        axes.step(*zip(*points), where="post", color=LINE_COLOR, linewidth=1.6, label="best val_bpb")
        axes.plot(*points[-1], "o", color=LINE_COLOR, markersize=4)  # the best at the end, even when it came last
        start = points[0][1]
        axes.axhline(start, color=STATUS_COLORS["baseline"], linestyle=":", linewidth=1, label="baseline mean")
        marker = verified_marker(points, verified)
        if marker is not None:
            x, y, error = marker
            axes.errorbar([x], [y], yerr=[error], fmt="D", color=VERIFIED_COLOR,
                          capsize=5, zorder=4, label=f"verified: baseline - {verified.mean:.4f} +- {error:.4f} "
                                                     f"({verified.pairs} fresh seeds)")
    axes.set_xlabel("cumulative training hours")
    axes.set_ylabel("best val_bpb")
    axes.set_title("best val_bpb per training hour", fontsize=10)
    axes.grid(True, alpha=0.3)
    _legend_below(axes, columns=1)


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
    _keep_labels_inside(left)
    figure.tight_layout()  # again: a label moved inside frees the room the first layout gave it
    return figure


def plot_progress(rows: list[dict], title: str, settings: dict | None = None, verified: Paired | None = None) -> bytes:
    """progress.png's bytes."""
    buffer = io.BytesIO()
    progress_figure(rows, title, settings, verified).savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()
# pragma: no mutate end
