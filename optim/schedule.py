"""Learning-rate and Muon-momentum schedules: plain functions of progress, shared by torch and MLX.

The budget is time (or steps), so the LR schedule is a function of progress = fraction of the budget used
(0..1), not of a step count that nobody knows in advance: linear warmup from 0, a constant plateau, then a
linear warmdown to final_lr_frac of the peak (trapezoidal / "WSD" schedule; Hägele et al. 2024 show that a
cooldown at the end matches cosine at a fixed budget). Groups marked `weight_decay_to_zero` also fade their
weight decay linearly to 0 over the budget, as the reference trainer does (a late, low-LR phase with full
decay would mostly shrink weights). `apply_schedule` sets both on the optimizer's groups before every step;
the budgeted loop (training/loop.py) calls it for every backend.
"""

from __future__ import annotations

# Muon momentum at step 0: low momentum early keeps the first, large, noisy updates from compounding
# (modded-nanogpt ramps 0.85 -> 0.95 over the first 300 steps).
MUON_MOMENTUM_START = 0.85


def lr_multiplier(progress: float, warmup_frac: float, warmdown_frac: float, final_lr_frac: float) -> float:
    """Multiplier of the peak LR at `progress` (clamped to 0..1) of the budget."""
    progress = min(max(float(progress), 0.0), 1.0)
    if warmup_frac > 0 and progress < warmup_frac:
        return progress / warmup_frac
    if warmdown_frac > 0 and progress > 1.0 - warmdown_frac:
        into = (progress - (1.0 - warmdown_frac)) / warmdown_frac  # 0 at the start of the warmdown, 1 at the end
        return 1.0 + into * (final_lr_frac - 1.0)
    return 1.0


def muon_momentum(step: int, warmup_steps: int, final: float) -> float:
    """Muon's momentum at optimizer step `step` (0-based): linear from 0.85 to `final` over warmup_steps."""
    if warmup_steps <= 0:
        return float(final)
    frac = min(step / warmup_steps, 1.0)
    return (1.0 - frac) * MUON_MOMENTUM_START + frac * float(final)


def apply_schedule(param_groups: list[dict], progress: float, schedule: dict) -> float:
    """Set each group's live `lr` (and, where marked, `weight_decay`) for `progress`; returns the LR multiplier."""
    lr_scale = lr_multiplier(progress, schedule["warmup_frac"], schedule["warmdown_frac"], schedule["final_lr_frac"])
    fade = 1.0 - min(max(float(progress), 0.0), 1.0)
    for group in param_groups:
        group["lr"] = group["initial_lr"] * lr_scale
        if group.get("weight_decay_to_zero"):
            group["weight_decay"] = group["initial_weight_decay"] * fade
    return lr_scale
