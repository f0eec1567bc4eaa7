"""The metrics record a training writes to metrics.json, the same for every backend, and the MFU in it."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # training.loop builds the record through RunPlan.metrics: no import cycle at run time
    from training.loop import LoopResult


def mfu_percent(flops_per_token: float, tokens_per_second: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation against the device's spec peak; None when the peak is unknown (no guessing)."""
    if not peak_flops or tokens_per_second <= 0:
        return None
    return 100.0 * flops_per_token * tokens_per_second / peak_flops


def model_flops(model) -> dict[str, float]:
    """FLOPs per token of a torch GPT under both conventions (models.gpt): the one formula for every port."""
    return {"flops_per_token": model.flops_per_token(),
            "flops_per_token_full_attention": model.flops_per_token_full_attention()}


def training_metrics(result: LoopResult, *, tokens_per_step: int, flops_per_token: float,
                     flops_per_token_full_attention: float, peak_flops: float | None, peak_memory_bytes: int,
                     num_params: int, warmup_seconds: float, started: float, backend: str, device_name: str,
                     extra: dict | None = None) -> dict:
    """`mfu_percent` counts causal attention (this project's convention, models.gpt.GPT.flops_per_token);
    `mfu_percent_full_attention` the reference trainer's 6 N + 12 h d T per layer, for comparison with it."""
    tokens = result.steps * tokens_per_step
    tokens_per_second = tokens / result.training_seconds if result.training_seconds > 0 else 0.0
    return {
        "status": "ok",
        "steps": result.steps,
        "tokens": tokens,
        "tokens_per_second": tokens_per_second,  # budgeted steps only: warm-up and compile excluded
        "mfu_percent": mfu_percent(flops_per_token, tokens_per_second, peak_flops),
        "flops_per_token": flops_per_token,
        "mfu_percent_full_attention": mfu_percent(flops_per_token_full_attention, tokens_per_second, peak_flops),
        "flops_per_token_full_attention": flops_per_token_full_attention,
        "peak_memory_gb": peak_memory_bytes / 1e9 if peak_memory_bytes else None,
        "num_params": num_params,
        "training_seconds": result.training_seconds,
        "warmup_seconds": warmup_seconds,
        "total_seconds": time.time() - started,
        "final_train_loss": result.final_loss,
        "backend": backend,
        "device_name": device_name,
        **(extra or {}),
    }
