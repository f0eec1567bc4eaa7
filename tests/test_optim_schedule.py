"""LR multiplier (warmup / constant / warmdown over budget progress) and Muon momentum warmup."""

import pytest

from optim.schedule import MUON_MOMENTUM_START, lr_multiplier, muon_momentum


def test_trapezoid_shape():
    f = lambda p: lr_multiplier(p, warmup_frac=0.1, warmdown_frac=0.4, final_lr_frac=0.1)  # noqa: E731
    assert f(0.0) == 0.0 and f(0.05) == pytest.approx(0.5) and f(0.1) == 1.0
    assert f(0.3) == 1.0 and f(0.6) == 1.0
    assert f(0.8) == pytest.approx(0.55) and f(1.0) == pytest.approx(0.1)
    values = [f(i / 100) for i in range(101)]
    assert max(values) == 1.0 and all(a >= b for a, b in zip(values[60:], values[61:]))  # monotone warmdown


def test_defaults_and_clamping():
    assert lr_multiplier(0.0, 0.0, 0.5, 0.0) == 1.0  # no warmup: full LR from the first step
    assert lr_multiplier(0.75, 0.0, 0.5, 0.0) == pytest.approx(0.5)
    assert lr_multiplier(1.5, 0.0, 0.5, 0.0) == 0.0 and lr_multiplier(-1, 0.0, 0.5, 0.0) == 1.0
    assert lr_multiplier(0.99, 0.0, 0.0, 0.0) == 1.0  # no warmdown


def test_muon_momentum_ramp():
    assert muon_momentum(0, 300, 0.95) == MUON_MOMENTUM_START == 0.85
    assert muon_momentum(150, 300, 0.95) == pytest.approx(0.90)
    assert muon_momentum(300, 300, 0.95) == muon_momentum(10_000, 300, 0.95) == pytest.approx(0.95)
    assert muon_momentum(0, 0, 0.9) == 0.9
