"""The report's "Noise and the machine" section: what the verdicts took out of val_bpb and what they judged with.

- the paired noise, pooled and per kind of change (research/judging/pairing.py), as the next verdict would use it;
- the machine's measured speed over the run and the slope that took it out of the gains (research/judging/speed.py);
- how far the incumbent's own runs moved over the run (research/judging/drift.py).
"""
from __future__ import annotations

import statistics

from research.judging.drift import incumbent_drift
from research.judging.pairing import config_speeds, estimate_noise
from research.judging.speed import adjusted_config_runs, adjustment_enabled, fit_speed


def noise_lines(rows: list[dict], settings: dict) -> list[str]:
    """Markdown bullet lines; empty before the run has two measured runs."""
    seq = settings.get("sequential") or {}
    slope, lost = fit_speed(rows, settings)
    by_config = adjusted_config_runs(rows, slope)
    pooled = estimate_noise(rows, float(seq.get("prior_df", 1)), by_config, fitted_df=lost)
    if pooled.paired_sd is None:
        return []
    lines = [f"- Paired noise (sd of a pair's gain), pooled: {pooled.paired_sd:.6f} ({pooled.paired_df} df measured)"]
    kinds = sorted({row["change_kind"] for row in rows if row.get("change_kind")})
    unpaired = set(seq.get("unpaired_kinds") or ())
    by_kind = []
    for kind in kinds:
        noise = estimate_noise(rows, float(seq.get("prior_df", 1)), by_config, kind,
                               float(seq.get("kind_prior_df", 2.0)), kind in unpaired, lost)
        by_kind.append(f"{kind} {noise.paired_sd:.6f} ({noise.paired_df} df)")
    if by_kind:
        lines.append("- By kind of change: " + ", ".join(by_kind))
    speeds = [speed for runs in config_speeds(rows).values() for speed in runs.values()]
    if speeds:
        spread = (f"- Machine speed (a fixed matmul timed during each training): {min(speeds):.1f} to "
                  f"{max(speeds):.1f} GFLOP/s, median {statistics.median(speeds):.1f}, over {len(speeds)} runs; ")
        if adjustment_enabled(settings):
            spread += f"paired gains adjusted by {slope:+.4f} val_bpb per unit ln(speed)"
        else:
            spread += "not taken out (decide.speed.adjust is off: a FLOP or steps budget trains the same at any speed)"
        lines.append(spread)
    drift = incumbent_drift(rows)
    if drift is not None:
        error = f" +- {drift.se:.6f}" if drift.se is not None else ""
        lines.append(f"- Drift: the re-run configs' val_bpb moved {drift.moved:+.6f}{error} from experiment "
                     f"{drift.first} to {drift.first + drift.span} ({drift.runs} runs; decide.control_every re-runs "
                     f"the incumbent)")
    return lines
