"""How a training or evaluation process ends: a metrics record, and failures that carry their reason.

Every failure the orchestrator should record as a `crash` is a TrainingFailure with a short machine kind
(nan, explosion, oom, budget, config, data, backend, error) and a one-sentence reason.
"""
from __future__ import annotations

import math


class TrainingFailure(RuntimeError):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def check_loss(loss: float, step: int, explosion_limit: float) -> None:
    """Stop on a non-finite loss or one far above the loss of a uniform guess (an exploded model)."""
    if not math.isfinite(loss):
        raise TrainingFailure("nan", f"the training loss became {loss} at step {step}")
    if loss > explosion_limit:
        raise TrainingFailure(
            "explosion", f"the training loss exploded to {loss:.3g} at step {step} (limit {explosion_limit:.3g})"
        )


def explosion_limit(vocab_size: int) -> float:
    # A model that predicts uniformly scores ln(V); twice that means training has diverged, not just stalled.
    return 2.0 * math.log(vocab_size)


def mfu_percent(flops_per_token: float, tokens_per_second: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation against the device's spec peak; None when the peak is unknown (no guessing)."""
    if not peak_flops or tokens_per_second <= 0:
        return None
    return 100.0 * flops_per_token * tokens_per_second / peak_flops
