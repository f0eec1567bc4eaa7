"""The keep line of a run: for each experiment, the val_bpb its first run had to beat to be kept at once.

It is the incumbent's val_bpb minus research.judging.verdict.keep_margin over the rows recorded before the experiment,
with the run's own `decide` settings (research/records/run_settings.py). A point between the best so far and this line
was better, but inside the noise: the plot shades that band.
"""
from __future__ import annotations

from research.judging.verdict import keep_margin
from research.judging.pairing import incumbent


def keep_lines(rows: list[dict], best_before: dict[int, float], settings: dict) -> dict[int, float]:
    """{exp: keep line} for every experiment after the baselines that has a best before it (`best_before`,
    the staircase's value when it started)."""
    ordered = sorted(rows, key=lambda row: int(row["exp"]))
    lines: dict[int, float] = {}
    for index, row in enumerate(ordered):
        exp = int(row["exp"])
        if row.get("status") == "baseline" or exp not in best_before:
            continue
        margin = keep_margin(ordered[:index], settings)
        if margin is not None:
            lines[exp] = best_before[exp] - margin
    return lines


def noise_sentence(rows: list[dict], settings: dict) -> str:
    """One sentence for the end of a run: how many proposals were better than their incumbent but inside the
    noise (discarded with a paired gain), and where the keep line stands now, so 0 keeps is no mystery."""
    judged = [row for row in rows if row.get("status") in ("keep", "discard")]
    inside = [row for row in judged if row.get("status") == "discard" and (row.get("paired_delta") or 0.0) < 0]
    margin = keep_margin(rows, settings)
    if margin is None:
        return f"{len(judged)} proposals judged; no keep line yet (the baselines give no noise estimate)."
    gains = [-row["paired_delta"] for row in inside]
    within = f" (paired gains up to {max(gains):.6f} val_bpb)" if gains else ""
    best = incumbent(rows).mean  # what keep_margin measured the margin against
    line = f" (best {best:.6f}, line {best - margin:.6f})" if best is not None else ""
    return (f"{len(inside)} of {len(judged)} judged proposals were better than the best but inside the noise{within}, "
            f"so not kept; the keep line now asks a first run to gain {margin:.6f} val_bpb{line}.")
