"""The keep/discard rule, as pure functions: no files, no clock, easy to test under synthetic noise.

Two runs of the same config give different val_bpb (data order, kernels, timing of a time budget). A change
is kept only if it beats the best so far by more than the noise: by at least
    max(min_delta, sigma_k * sigma)
where sigma is the sample standard deviation of repeated baseline runs. With sigma_k = 2 and sigma known,
a change that does nothing is kept ~2.3% of the time (one-sided normal tail), and a true improvement of
3 sigma ~84% of the time. With sigma and best estimated from only a few repeats the false-keep rate is
higher (tests/test_decide_noise.py measures it); confirm_decision() re-runs a winner and keeps it only if
the mean of its runs still wins, which brings it back down.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from research.errors import ResearchStopped


@dataclass(frozen=True)
class Decision:
    keep: bool
    threshold: float  # val_bpb had to be below this
    delta: float | None  # val_bpb - best (negative = better); None when there is no val_bpb
    reason: str


def _finite(values: Iterable) -> list[float]:
    return [v for v in map(finite_or_none, values) if v is not None]


def noise_sigma(values: list[float]) -> float | None:
    """Sample standard deviation (n-1) of repeated runs of one config; None with fewer than 2 values."""
    clean = _finite(values)
    return statistics.stdev(clean) if len(clean) >= 2 else None


def baseline_best(values: list[float]) -> float | None:
    """The best-so-far to start from after repeated baselines: their mean.

    Not their minimum: the minimum of noisy runs is biased low by the noise itself, and every later
    experiment would be judged against luck.
    """
    clean = _finite(values)
    return statistics.fmean(clean) if clean else None


def keep_threshold(best: float, sigma: float | None, min_delta: float, sigma_k: float) -> float:
    margin = max(min_delta, sigma_k * sigma if sigma is not None else 0.0)
    return best - margin


def _describe_margin(sigma: float | None, min_delta: float, sigma_k: float) -> str:
    if sigma is None:
        return f"min_delta {min_delta:g} (no noise estimate)"
    return f"max(min_delta {min_delta:g}, {sigma_k:g} sigma = {sigma_k * sigma:.6f})"


def decide(val_bpb: float | None, best: float, sigma: float | None, min_delta: float = 0.0,
           sigma_k: float = 2.0) -> Decision:
    """Keep when val_bpb < best - max(min_delta, sigma_k * sigma); lower val_bpb is better."""
    if best is None or not math.isfinite(best):
        raise ValueError("decide() needs a finite best val_bpb; record a baseline first.")
    threshold = keep_threshold(best, sigma, min_delta, sigma_k)
    if val_bpb is None or not math.isfinite(val_bpb):
        return Decision(False, threshold, None, f"No finite val_bpb ({val_bpb}); discarded.")
    delta = val_bpb - best
    margin = _describe_margin(sigma, min_delta, sigma_k)
    if val_bpb < threshold:
        return Decision(True, threshold, delta,
                        f"val_bpb {val_bpb:.6f} beats the best {best:.6f} by {-delta:.6f}, more than {margin}.")
    if delta < 0:
        return Decision(False, threshold, delta,
                        f"val_bpb {val_bpb:.6f} is better than the best {best:.6f} by {-delta:.6f}, "
                        f"within the noise margin {margin}; discarded.")
    return Decision(False, threshold, delta,
                    f"val_bpb {val_bpb:.6f} is not better than the best {best:.6f}; discarded.")


def confirm_decision(values: list[float], best: float, sigma: float | None, min_delta: float = 0.0,
                     sigma_k: float = 2.0) -> Decision:
    """After a keep, the config is re-run; keep it only if the mean of all its runs still clears the bar.

    The bar is the same as for one run (not sigma/sqrt(n)): deliberately conservative, since best itself
    is a noisy estimate.
    """
    clean = _finite(values)
    if not clean:
        return decide(None, best, sigma, min_delta, sigma_k)
    mean = statistics.fmean(clean)
    single = decide(mean, best, sigma, min_delta, sigma_k)
    verdict = "confirmed" if single.keep else "not confirmed"
    return Decision(single.keep, single.threshold, single.delta,
                    f"Mean of {len(clean)} runs {mean:.6f}: {verdict}. {single.reason}")


def finite_or_none(value: Any) -> float | None:
    """The value as a float, or None when it is missing, not a number, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def paired_deltas(history: list, base_seed: Any) -> dict[int, float]:
    """val_bpb minus the same-seed run of the block each experiment started from, by experiment number.

    Every experiment trains with the base block's seed, while the baselines spread over several seeds to measure
    the noise; a row's `delta` is against their mean, so a lucky base seed makes every change look better (on
    the cpu preset the seed-42 baseline sat 0.011 under the mean of four). A paired delta removes that offset:
    the reference is the baseline row trained with `base_seed`, replaced by each keep (a kept change becomes the
    base, and experiments keep the base seed). Experiments before any such reference are left out.
    """
    reference: float | None = None
    deltas: dict[int, float] = {}
    for row in sorted(history, key=lambda r: int(r.get("exp", 0))):
        value = finite_or_none(row.get("val_bpb"))
        if row.get("status") == "baseline":
            same_seed = base_seed is not None and str(row.get("seed")) == str(base_seed)
            if reference is None and same_seed and value is not None:
                reference = value
            continue
        if reference is not None and value is not None:
            deltas[int(row["exp"])] = value - reference
        if row.get("status") == "keep" and value is not None:
            reference = value
    return deltas


def _first_line(text: str | None, default: str) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0][:200] if lines else default


def check_stop(rows: list[dict], max_consecutive_crashes: int) -> str | None:
    """A reason sentence when the last max_consecutive_crashes experiments all crashed, else None.

    Skipped proposals are ignored: they never reached training, so they say nothing about whether training
    works. 0 or less disables the check.
    """
    if max_consecutive_crashes <= 0:
        return None
    ran = [row for row in rows if row.get("status") != "skip"]
    tail = ran[-max_consecutive_crashes:]
    if len(tail) < max_consecutive_crashes or any(row.get("status") != "crash" for row in tail):
        return None
    last_error = _first_line(tail[-1].get("error"), "no error recorded")
    return (f"The last {max_consecutive_crashes} experiments crashed (last error: {last_error}); "
            f"the run stopped so you can fix the cause, see the error column of results.tsv.")


def check_baseline(rows: list[dict]) -> None:
    """Raise ResearchStopped when the baseline crashed: nothing can be judged against a missing baseline.

    The baseline is the first row (experiment 0) and every row with status 'baseline'.
    """
    if not rows:
        return
    first = min(rows, key=lambda row: row["exp"])
    candidates = [first] + [row for row in rows if row.get("status") == "baseline" and row is not first]
    for row in candidates:
        val = row.get("val_bpb")
        crashed = row.get("status") == "crash" or (
            row.get("status") == "baseline" and (val is None or not math.isfinite(val)))
        if crashed:
            reason = _first_line(row.get("error"), "no val_bpb")
            raise ResearchStopped(f"The baseline crashed ({reason}); fix the configuration before running experiments.")
