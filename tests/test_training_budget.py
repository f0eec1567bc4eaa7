"""The training budget's arithmetic: progress, room for another step, and a step too long for the budget."""
from __future__ import annotations

import pytest

from training.loop import Budget, TrainingFailure


def test_a_step_longer_than_a_time_budget_fails_with_the_numbers():
    budget = Budget.from_config({"kind": "time", "seconds": 30})
    with pytest.raises(TrainingFailure) as info:
        budget.check_step_fits(micro_batch_seconds=0.6, micro_batches=2048)
    assert info.value.kind == "budget"
    assert "about 1229 s (2048 micro-batches of 0.60 s)" in info.value.reason
    assert "30 s budget" in info.value.reason and "batch.total_batch_tokens" in info.value.reason


@pytest.mark.parametrize("config, micro_seconds, micro_batches", [
    ({"kind": "time", "seconds": 30}, 0.6, 40),         # 24 s: fits
    ({"kind": "time", "seconds": 30}, 45.0, 1),         # one micro-batch is the whole step: nothing to cut short
    ({"kind": "steps", "steps": 10}, 0.6, 2048),        # a steps budget does not charge for time
])
def test_steps_that_fit_or_cannot_be_judged_pass(config, micro_seconds, micro_batches):
    Budget.from_config(config).check_step_fits(micro_seconds, micro_batches)


def test_time_budget_has_room_until_the_predicted_step_would_overrun():
    budget = Budget.from_config({"kind": "time", "seconds": 10})
    assert budget.has_room(0, 0.0)  # no step timed yet
    budget.record_step(2.0)
    assert budget.has_room(4, 8.0) and not budget.has_room(5, 8.5)
    assert budget.progress(5, 5.0) == 0.5 and budget.progress(9, 12.0) == 1.0
