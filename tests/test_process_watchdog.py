"""The watchdog of training.launch.run_isolated: a total deadline, a silence limit, or both."""
from __future__ import annotations

import pytest

from experiment.lifecycle import training_limits
from training.launch import run_isolated


def run_child(tmp_path, interval: float, total: float, deadline: float | None, silence: float | None):
    env = {"CHATTY_INTERVAL": str(interval), "CHATTY_TOTAL": str(total)}
    return run_isolated("tests.chatty_child", tmp_path, tmp_path / "child.log", deadline, env=env,
                        silence_seconds=silence)


def test_a_child_that_keeps_talking_outlives_the_silence_limit(tmp_path):
    result = run_child(tmp_path, interval=0.3, total=4.0, deadline=None, silence=2.0)
    assert result.returncode == 0 and result.killed_by_watchdog is None
    assert result.seconds >= 4.0  # ran twice as long as the silence limit
    assert "tick" in (tmp_path / "child.log").read_text()


def test_a_silent_child_is_killed_for_its_silence(tmp_path):
    result = run_child(tmp_path, interval=60.0, total=60.0, deadline=None, silence=2.0)
    assert result.killed_by_watchdog == "silence" and result.returncode < 0
    assert 2.0 <= result.seconds < 30.0
    assert "no output for 2 s" in result.describe_failure()


def test_the_deadline_holds_however_chatty_the_child(tmp_path):
    result = run_child(tmp_path, interval=0.2, total=60.0, deadline=2.0, silence=10.0)
    assert result.killed_by_watchdog == "deadline"
    assert 2.0 <= result.seconds < 30.0
    assert "past its deadline" in result.describe_failure()


@pytest.mark.parametrize("budget, expected", [
    ({"kind": "time", "seconds": 60, "deadline_factor": 3.0, "grace_seconds": 120}, (300.0, None)),
    ({"kind": "steps", "steps": 40, "deadline_factor": 3.0, "grace_seconds": 120}, (None, 360.0)),
])
def test_training_limits_by_budget_kind(budget, expected):
    assert training_limits(budget) == expected
