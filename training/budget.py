"""The training budget: a fixed number of seconds (the product) or of optimizer steps (tests).

Time budgets count only optimizer steps: compilation and warm-up happen before the clock starts. A step
is started only if the recent step time says it will finish inside the budget, so no optimizer step
happens outside it.
"""
from __future__ import annotations

from dataclasses import dataclass

from training.outcome import TrainingFailure


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

    def check_step_fits(self, micro_batch_seconds: float, micro_batches: int) -> None:
        """Fail at once when a single optimizer step would outlast a whole time budget.

        Called after the first micro-batch of the first step. Without it a step of, say, 2,048 micro-batches
        runs until the orchestrator's deadline kills the process, minutes later, as an unexplained crash.
        """
        estimate = micro_batch_seconds * micro_batches
        if self.kind == "time" and micro_batches > 1 and estimate > self.seconds:
            raise TrainingFailure(
                "budget", f"one optimizer step would take about {estimate:.0f} s ({micro_batches} micro-batches of "
                          f"{micro_batch_seconds:.2f} s), more than the whole {self.describe()} budget; lower "
                          f"batch.total_batch_tokens")

    def describe(self) -> str:
        return f"{self.steps} steps" if self.kind == "steps" else f"{self.seconds:g} s"
