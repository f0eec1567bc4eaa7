"""The keep rule and the stop rules, on hand-made numbers."""
import math

import pytest

from research.judging.verdict import (baseline_best, check_baseline, check_stop, judge_single_run, keep_threshold,
                                      noise_sigma)
from research.errors import ResearchStopped


def test_noise_sigma_is_the_sample_std():
    assert noise_sigma([]) is None and noise_sigma([1.0]) is None
    assert noise_sigma([1.0, 1.0]) == 0.0
    assert noise_sigma([1.0, 2.0, 3.0]) == pytest.approx(1.0)  # n-1, not n
    assert noise_sigma([1.0, None, float("nan"), 3.0]) == pytest.approx(math.sqrt(2))
    assert baseline_best([1.0, 1.2, None]) == pytest.approx(1.1) and baseline_best([]) is None


def test_threshold_takes_the_larger_margin():
    assert keep_threshold(1.0, 0.01, 0.001, 2.0) == pytest.approx(0.98)
    assert keep_threshold(1.0, 0.0001, 0.005, 2.0) == pytest.approx(0.995)
    assert keep_threshold(1.0, None, 0.005, 2.0) == pytest.approx(0.995)


def test_judge_single_run():
    win = judge_single_run(0.97, 1.0, 0.01, 0.0, 2.0)
    assert win.keep and win.delta == pytest.approx(-0.03) and win.threshold == pytest.approx(0.98)
    assert "beats" in win.reason
    within = judge_single_run(0.99, 1.0, 0.01, 0.0, 2.0)
    assert not within.keep and "noise" in within.reason
    worse = judge_single_run(1.01, 1.0, 0.01, 0.0, 2.0)
    assert not worse.keep and "not better" in worse.reason
    assert not judge_single_run(1.0, 1.0, 0.0, 0.0, 2.0).keep  # a tie is not an improvement
    crashed = judge_single_run(None, 1.0, 0.01)
    assert not crashed.keep and crashed.delta is None
    assert not judge_single_run(float("nan"), 1.0, 0.01).keep
    with pytest.raises(ValueError):
        judge_single_run(0.9, None, 0.01)


def rows(*statuses, error="CUDA out of memory"):
    return [{"exp": i, "status": s, "val_bpb": None if s == "crash" else 1.0,
             "error": error if s == "crash" else None} for i, s in enumerate(statuses)]


def test_check_stop_counts_trailing_crashes_and_ignores_skips():
    assert check_stop(rows("baseline", "crash", "crash"), 3) is None
    reason = check_stop(rows("baseline", "crash", "crash", "skip", "crash"), 3)
    assert reason.startswith("The last 3 experiments crashed (last error: CUDA out of memory)")
    assert check_stop(rows("baseline", "crash", "keep", "crash", "crash"), 3) is None
    assert check_stop(rows("crash", "crash", "crash"), 0) is None  # disabled
    multiline = rows("baseline", "crash", error="\n  Traceback...\nRuntimeError: boom")
    assert "last error: Traceback..." in check_stop(multiline, 1)


def test_check_baseline():
    check_baseline([])
    check_baseline(rows("baseline", "crash", "crash"))  # later crashes are not the baseline's
    with pytest.raises(ResearchStopped) as err:
        check_baseline(rows("crash", "keep"))
    assert str(err.value) == ("The baseline crashed (CUDA out of memory); fix the configuration before running "
                              "experiments.")
    repeat_without_value = rows("baseline", "baseline")
    repeat_without_value[1]["val_bpb"] = None
    with pytest.raises(ResearchStopped, match=r"baseline crashed \(no val_bpb\)"):
        check_baseline(repeat_without_value)
