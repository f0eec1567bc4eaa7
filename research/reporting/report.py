"""runs/<tag>/report.md and progress.png: what a run found, for a human reading it the next morning.

The plot is research/reporting/progress_plot.py's, the cost section research/reporting/run_costs.py's. Both files are written
atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.atomic import atomic_write_bytes, atomic_write_text
from research.judging.verdict import baseline_best, finite_or_none, noise_sigma
from research.records.layout import RunLayout
from research.reporting.noise_summary import noise_lines
from research.reporting.progress_plot import STATUS_COLORS, plot_progress
from research.reporting.run_costs import cost_lines, run_costs, verified_gain
from research.records.run_settings import decide_settings


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


def _fmt(value, digits: int = 6) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(rows: list[dict], baseline_hparams: dict, best_hparams: dict, extra: dict,
                    verified: str | None = None, verified_figures=None, settings: dict | None = None) -> str:
    """`verified`: finalize's "Verified" section; `verified_figures`: its gain (research.judging.finalize.Paired);
    `settings`: the run's decide block, for the noise section."""
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
    ]
    out += [f"- {key}: {_cell(value, 120)}" for key, value in extra.items()]
    noise = noise_lines(rows, settings) if settings else []
    if noise:
        out += ["", "## Noise and the machine", ""] + noise
    out += ["", "## Cost", ""]
    out += cost_lines(run_costs(rows), gain, verified_figures, summary["experiments"])

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
    verified_figures = verified_gain(layout.finalize_table)  # baseline - final, once `autoresearch finalize` ran
    settings = decide_settings(layout.settings)
    plot = plot_progress(rows, f"autoresearch: {extra['tag']}", settings, verified_figures)
    atomic_write_bytes(png_path, plot)
    atomic_write_text(md_path, render_markdown(rows, baseline_hparams, best_hparams, extra, verified, verified_figures,
                                               settings))
    return md_path, png_path
