"""Parity with the reference trainer (karpathy/autoresearch train.py), each checked against its definition:

- the sliding window: the reference passes flash-attention window_size=(W, 0), which lets query i see the keys
  i - W .. i, i.e. W + 1 keys (1,025 at the default short window of 1,024);
- Muon's normalisation before the Newton-Schulz iterations: X / (||X||_F * 1.02 + 1e-6).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.attention import attention, use_attention_impl
from optim.muon import orthogonalize


def flash_window_allowed(T: int, reach: int | None) -> torch.Tensor:
    """(T, T) booleans straight from flash-attention's window (reach, 0) with causal=True: j in [i - reach, i]."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    if reach is None:
        return j <= i
    return (j <= i) & (j >= i - reach)


def dense(q, k, v, allowed):
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(q.size(-1))
    return (scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v.double()).float()


def qkv(T, H=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, H, T, D, generator=g) for _ in range(3)]


# Near the thresholds: reach 1, a reach one short of full (T - 2), exactly full (T - 1), past it, and the banded
# path's block sizes (reach 63/64/127/128 around C = 64).
@pytest.mark.parametrize("T,reach", [(40, 1), (40, 38), (40, 39), (40, 200), (300, 63), (300, 64), (400, 127),
                                     (400, 128), (257, 100)])
@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_window_is_flash_attentions_reach(T, reach, impl):
    q, k, v = qkv(T)
    expected = dense(q, k, v, flash_window_allowed(T, reach))
    torch.testing.assert_close(attention(q, k, v, reach, impl), expected, atol=2e-5, rtol=1e-4)


def test_default_short_window_sees_1025_keys():
    """At the default (seq_len 2048, short window 1024) the last query sees positions 1023..2047: 1,025 keys.
    Changing key 1023 moves it; changing key 1022 does not."""
    T, reach = 2048, 1024
    q, k, v = qkv(T, H=1, D=4, seed=1)
    with use_attention_impl("sdpa"):
        base = attention(q, k, v, reach)[0, 0, -1]
        for position, moves in ((T - 1 - reach, True), (T - 2 - reach, False)):
            v2 = v.clone()
            v2[0, 0, position] += 10.0
            changed = not torch.allclose(attention(q, k, v2, reach)[0, 0, -1], base)
            assert changed == moves, f"key {position} {'should' if moves else 'should not'} reach the last query"
    assert int(flash_window_allowed(T, reach)[-1].sum()) == 1025


def test_mlx_window_mask_is_flash_attentions_reach():
    pytest.importorskip("mlx.core", reason="pip install -e '.[mlx-cpu]' for the MLX port")
    from models.gpt_mlx import window_mask

    for T, reach in ((40, 1), (40, 38), (300, 64)):
        allowed = np.array(window_mask(T, reach)) == 0.0
        np.testing.assert_array_equal(allowed, flash_window_allowed(T, reach).numpy())


@pytest.mark.parametrize("scale", [1e-7, 1e-6, 1e-5, 1.0])  # where the epsilon matters, and where it does not
def test_muon_normalisation_epsilon_is_the_references(scale):
    """With no Newton-Schulz step, orthogonalize returns the normalised matrix itself: G / (|G|_F * 1.02 + 1e-6)."""
    G = torch.randn(3, 16, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    G = G / G.norm(dim=(-2, -1), keepdim=True) * scale
    expected = G / (G.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    torch.testing.assert_close(orthogonalize(G, 0, torch.float64), expected, rtol=1e-12, atol=0)


def test_mlx_muon_normalisation_epsilon_is_the_references():
    mx = pytest.importorskip("mlx.core", reason="pip install -e '.[mlx-cpu]' for the MLX port")
    from optim.muon_mlx import orthogonalize as orthogonalize_mlx

    G = np.random.default_rng(3).standard_normal((2, 8, 12)).astype(np.float32)
    G = G / np.linalg.norm(G, axis=(-2, -1), keepdims=True) * 1e-6
    expected = G / (np.linalg.norm(G, axis=(-2, -1), keepdims=True) * 1.02 + 1e-6)
    got = np.array(orthogonalize_mlx(mx.array(G), 0, mx.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
