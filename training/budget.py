"""The training budget: a fixed number of seconds (the product) or of optimizer steps (tests).

Time budgets count only optimizer steps: compilation and warm-up happen before the clock starts. A step
is started only if the recent step time says it will finish inside the budget, so no optimizer step
happens outside it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Budget:
    kind: str  # "time" | "steps"
    seconds: float
    steps: int
    # Exponential moving average of the step time, for predicting whether one more step fits.
    _step_seconds_ema: float | None = None

    @classmethod
    def from_config(cls, budget_cfg: dict) -> "Budget":
        kind = budget_cfg.get("kind", "time")
        if kind not in ("time", "steps"):
            raise ValueError(f"budget.kind must be 'time' or 'steps', not {kind!r}.")
        seconds, steps = float(budget_cfg.get("seconds", 0)), int(budget_cfg.get("steps", 0))
        if kind == "time" and seconds <= 0:
            raise ValueError("budget.seconds must be positive for budget.kind=time.")
        if kind == "steps" and steps <= 0:
            raise ValueError("budget.steps must be positive for budget.kind=steps.")
        return cls(kind=kind, seconds=seconds, steps=steps)

    def progress(self, step: int, elapsed: float) -> float:
        """Fraction of the budget used, in [0, 1]; drives the LR schedule."""
        if self.kind == "steps":
            return min(1.0, step / self.steps)
        return min(1.0, elapsed / self.seconds)

    def record_step(self, step_seconds: float) -> None:
        ema = self._step_seconds_ema
        self._step_seconds_ema = step_seconds if ema is None else 0.8 * ema + 0.2 * step_seconds

    def has_room(self, step: int, elapsed: float) -> bool:
        """True if another optimizer step fits in the budget."""
        if self.kind == "steps":
            return step < self.steps
        predicted = self._step_seconds_ema or 0.0
        return elapsed + predicted <= self.seconds

    def describe(self) -> str:
        return f"{self.steps} steps" if self.kind == "steps" else f"{self.seconds:g} s"
