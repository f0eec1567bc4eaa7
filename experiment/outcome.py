"""What one training and its evaluation gave: metrics.json's and eval.json's dicts, read one way everywhere."""
from __future__ import annotations

from dataclasses import dataclass

from research.judging.verdict import failure_repeats, finite_or_none


@dataclass(frozen=True)
class Outcome:
    metrics: dict | None              # the training's metrics.json; None when it never ran (a skip)
    evaluation: dict | None = None    # the evaluation's eval.json; None when the training failed or never ran

    @property
    def val_bpb(self) -> float | None:
        """The evaluated val_bpb, or None unless the evaluation (run only after a training that succeeded) gave a
        finite one."""
        if (self.evaluation or {}).get("status") != "ok":
            return None
        return finite_or_none(self.evaluation.get("val_bpb"))

    @property
    def trained(self) -> bool:
        return (self.metrics or {}).get("status") == "ok"

    @property
    def machine_speed(self) -> float | None:
        return finite_or_none((self.metrics or {}).get("machine_speed"))

    @property
    def failure(self) -> str:
        """Why there is no val_bpb, in the failed step's own words."""
        failed = self.evaluation if self.evaluation and self.evaluation.get("status") != "ok" else self.metrics or {}
        return failed.get("reason") or "no finite val_bpb"

    @property
    def repeats(self) -> bool:
        """True when the failure would come back on another seed (research.judging.verdict.failure_repeats)."""
        return failure_repeats(self.metrics, self.evaluation)

    @classmethod
    def of(cls, pair: tuple[dict | None, dict | None]) -> "Outcome":
        """From train_then_evaluate's (metrics, evaluation)."""
        return cls(*pair)
