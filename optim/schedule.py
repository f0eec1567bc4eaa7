"""Learning-rate and Muon-momentum schedules: plain functions of progress, shared by torch and MLX.

The budget is time (or steps), so the LR schedule is a function of progress = fraction of the budget used
(0..1), not of a step count that nobody knows in advance: linear warmup from 0, a constant plateau, then a
linear warmdown to final_lr_frac of the peak (trapezoidal / "WSD" schedule; Hägele et al. 2024 show that a
cooldown at the end matches cosine at a fixed budget). The trainer multiplies every group's `initial_lr`
by lr_multiplier(progress, ...).
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
