"""runs/<tag>/report.md and progress.png: what a run found, for a human reading it the next morning.

The plot uses matplotlib's object API with the Agg canvas (no pyplot): no global figure state, no GUI
backend, safe inside a Prefect worker thread. Both files are written atomically.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from data.atomic import atomic_write_bytes, atomic_write_text
from research.decide import baseline_best, finite_or_none, noise_sigma
from research.layout import RunLayout

STATUS_COLORS = {"baseline": "#1f3b73", "keep": "#2ca02c", "discard": "#9a9a9a", "skip": "#d9b44a", "crash": "#d62728"}
FIGURE_SIZE_IN = (12.0, 6.0)
FIGURE_DPI = 100  # 1200 x 600 pixels


def _cell(value, width: int = 80) -> str:
    """A markdown table cell: one line, pipes escaped, shortened."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'optim': {'matrix_lr': 0.04}} -> {'optim.matrix_lr': 0.04}: the keys proposals use."""
    flat = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_diff(baseline: dict, best: dict) -> list[tuple[str, object, object]]:
    old, new = flatten(baseline), flatten(best)
    missing = object()
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            changes.append((key, None if before is missing else before, None if after is missing else after))
    return changes


def summarize(rows: list[dict]) -> dict:
    counts = {status: 0 for status in STATUS_COLORS}
    for row in rows:
        counts[row.get("status") or "skip"] = counts.get(row.get("status") or "skip", 0) + 1
    baselines = [finite_or_none(row.get("val_bpb")) for row in rows if row.get("status") == "baseline"]
    baseline = baseline_best(baselines)
    candidates = [finite_or_none(row.get("val_bpb")) for row in rows if row.get("status") in ("baseline", "keep")]
    kept = [finite_or_none(row.get("val_bpb")) for row in rows if row.get("status") == "keep"]
    kept = [v for v in kept if v is not None]
    best = min(kept) if kept else baseline
    if best is None:
        best = min((v for v in candidates if v is not None), default=None)
    return {
        "experiments": len(rows),
        "counts": counts,
        "baseline_val_bpb": baseline,
        "best_val_bpb": best,
        "gain": (baseline - best) if baseline is not None and best is not None else None,
        "noise_sigma": noise_sigma(baselines),
        "llm_tokens": sum(int(row.get("llm_input_tokens") or 0) + int(row.get("llm_output_tokens") or 0) for row in rows),
        "llm_cost_usd": sum(finite_or_none(row.get("llm_cost_usd")) or 0.0 for row in rows),
    }


def _paired_cell(row: dict) -> str:
    """The gain the keep rule judged: candidate - incumbent on the same seeds (negative = better)."""
    delta, error = finite_or_none(row.get("paired_delta")), finite_or_none(row.get("paired_se"))
    if delta is None:
        return ""
    seeds = str(row.get("paired_seeds") or "").split()
    return f"{delta:+.6f}" + (f" +- {error:.6f}" if error is not None else "") + (f" ({len(seeds)})" if seeds else "")


def results_table_markdown(rows: list[dict], limit: int | None = 20) -> str:
    """The last `limit` rows (all with None) as a markdown table: for the CLI and Prefect artifacts."""
    shown = rows[-limit:] if limit else rows
    lines = ["| exp | status | val_bpb | paired delta +- s.e. (seeds) | change | verdict | description |",
             "|---:|---|---:|---:|---|---|---|"]
    for row in shown:
        lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            row.get("exp"), _cell(row.get("status")), _cell(finite_or_none(row.get("val_bpb"))), _paired_cell(row),
            _cell(row.get("change"), 40), _cell(row.get("verdict"), 60), _cell(row.get("description"), 60)))
    if limit and len(rows) > limit:
        lines.append(f"\n({len(rows) - limit} earlier rows not shown.)")
    return "\n".join(lines) + "\n"


def _best_so_far(rows: list[dict]) -> list[tuple[float, float]]:
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


def plot_progress(rows: list[dict], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    values = [finite_or_none(row.get("val_bpb")) for row in rows]
    finite = [v for v in values if v is not None]
    staircase = _best_so_far(rows)

    # Clip a diverged run (val_bpb 8 next to 1.0) so it does not flatten the picture; drawn as ^ at the top.
    top = None
    if finite:
        low = min(finite)
        reference = staircase[0][1] if staircase else sorted(finite)[len(finite) // 2]
        span = max(reference - low, 0.01 * abs(reference), 1e-6)
        top = min(max(finite), reference + 3 * span)
        axes.set_ylim(low - 0.15 * span, top + 0.25 * span)

    for status, color in STATUS_COLORS.items():
        if status == "crash":
            continue
        xs = [row["exp"] for row, v in zip(rows, values) if row.get("status") == status and v is not None]
        ys = [v for row, v in zip(rows, values) if row.get("status") == status and v is not None]
        if not xs:
            continue
        clipped = [min(y, top) for y in ys] if top is not None else ys
        markers = ["^" if top is not None and y > top else "o" for y in ys]
        for marker in set(markers):
            sel = [i for i, m in enumerate(markers) if m == marker]
            axes.scatter([xs[i] for i in sel], [clipped[i] for i in sel], c=color, marker=marker,
                         s=60 if status in ("keep", "baseline") else 25, zorder=3,
                         label=status if marker == "o" else None, edgecolors="none")

    if staircase:
        last_exp = rows[-1]["exp"]
        xs = [x for x, _ in staircase] + [last_exp]
        ys = [y for _, y in staircase] + [staircase[-1][1]]
        axes.step(xs, ys, where="post", color=STATUS_COLORS["keep"], linewidth=1.5, zorder=2, label="best so far")

    for row, v in zip(rows, values):
        if row.get("status") == "keep" and v is not None:
            label = _cell(row.get("change") or row.get("description"), 32)
            axes.annotate(label, (row["exp"], min(v, top) if top is not None else v), xytext=(4, 6),
                          textcoords="offset points", fontsize=7, rotation=20, color="#1a5e1a")

    crashes = [row["exp"] for row in rows if row.get("status") == "crash"]
    if crashes:
        # x in data units, y in axes units: crashes have no val_bpb, so they sit along the top edge.
        axes.scatter(crashes, [0.97] * len(crashes), marker="x", c=STATUS_COLORS["crash"], s=40,
                     transform=axes.get_xaxis_transform(), label="crash", zorder=4)

    axes.set_xlabel("experiment")
    axes.set_ylabel("val_bpb (lower is better)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if rows:
        axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def _fmt(value, digits: int = 6) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(rows: list[dict], baseline_hparams: dict, best_hparams: dict, extra: dict,
                    verified: str | None = None) -> str:
    extra = dict(extra or {})
    tag = extra.pop("tag", None)
    summary = summarize(rows)
    sigma = extra.pop("noise_sigma", None)
    sigma = summary["noise_sigma"] if sigma is None else sigma
    counts = summary["counts"]
    gain = summary["gain"]
    baseline = summary["baseline_val_bpb"]
    gain_text = "n/a" if gain is None else f"{gain:.6f}" + (f" ({100 * gain / baseline:.2f}%)" if baseline else "")

    out = [f"# autoresearch report" + (f": {tag}" if tag else ""), "", "![progress](progress.png)", "", "## Summary", ""]
    out += [
        f"- Experiments: {summary['experiments']} ({counts.get('keep', 0)} keep, {counts.get('discard', 0)} discard, "
        f"{counts.get('crash', 0)} crash, {counts.get('skip', 0)} skip, {counts.get('baseline', 0)} baseline)",
        f"- Baseline val_bpb: {_fmt(baseline)}",
        f"- Best val_bpb: {_fmt(summary['best_val_bpb'])}",
        f"- Gain: {gain_text}",
        f"- Noise sigma (repeated baselines): {_fmt(sigma)}",
        f"- LLM tokens: {summary['llm_tokens']:,}; cost: ${summary['llm_cost_usd']:.4f}",
    ]
    out += [f"- {key}: {_cell(value, 120)}" for key, value in extra.items()]

    out += ["", "## Best configuration (changes from the baseline)", ""]
    diff = config_diff(baseline_hparams, best_hparams)
    out += [f"- `{key}`: {old!r} -> {new!r}" for key, old, new in diff] or ["The best configuration is the baseline."]

    keeps = [row for row in rows if row.get("status") == "keep"]
    out += ["", "## Kept experiments", ""]
    out += [results_table_markdown(keeps, limit=None).rstrip()] if keeps else ["None yet."]
    if verified:  # `autoresearch finalize`: the keeps re-measured on fresh seeds
        out += ["", verified.rstrip()]

    crashes = [row for row in rows if row.get("status") == "crash"][-5:]
    out += ["", "## Last crashes", ""]
    if crashes:
        out += ["| exp | change | error |", "|---:|---|---|"]
        out += [f"| {row['exp']} | {_cell(row.get('change'), 40)} | {_cell(row.get('error'), 160)} |" for row in crashes]
    else:
        out += ["None."]
    return "\n".join(out) + "\n"


def write_report(run_dir: str | os.PathLike, rows: list[dict], baseline_hparams: dict, best_hparams: dict,
                 extra: dict | None = None, verified: str | None = None) -> tuple[Path, Path]:
    """Write run_dir/report.md and run_dir/progress.png; returns their paths."""
    run_dir = Path(run_dir)
    extra = dict(extra or {})
    extra.setdefault("tag", run_dir.name)
    rows = sorted(rows, key=lambda row: row["exp"])
    layout = RunLayout(run_dir)
    png_path, md_path = layout.plot, layout.report
    atomic_write_bytes(png_path, plot_progress(rows, f"autoresearch: {extra['tag']}"))
    atomic_write_text(md_path, render_markdown(rows, baseline_hparams, best_hparams, extra, verified))
    return md_path, png_path
