"""val_bpb: hand-computed values and the exclusions (padding, zero-byte special tokens)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from data.metric import accumulate, bits_per_byte, load_token_bytes


def test_bits_per_byte_by_hand():
    # 3 tokens of 2, 3 and 1 bytes with losses 0.5, 1.0, 1.5 nats: 3 nats over 6 bytes.
    nats, total_bytes = accumulate(np.array([0.5, 1.0, 1.5]), np.array([1, 2, 3]), np.array([0, 2, 3, 1], dtype=np.int32))
    assert nats == pytest.approx(3.0)
    assert total_bytes == 6
    assert bits_per_byte(nats, total_bytes) == pytest.approx(3.0 / (6 * math.log(2)))


def test_padding_and_special_targets_are_excluded():
    token_bytes = np.array([0, 4, 2], dtype=np.int32)  # id 0 is a special token (BOS): 0 bytes
    losses = np.array([[1.0, 9.0, 2.0], [7.0, 3.0, 5.0]])
    targets = np.array([[1, 0, 2], [-1, 2, -1]])  # BOS target and padding (-1) must not count
    nats, total_bytes = accumulate(losses, targets, token_bytes)
    assert nats == pytest.approx(1.0 + 2.0 + 3.0)
    assert total_bytes == 4 + 2 + 2


def test_uniform_model_bpb():
    # A model that puts probability 1/256 on each byte-token scores exactly 8 bits per byte.
    token_bytes = np.ones(256, dtype=np.int32)
    targets = np.arange(256)
    nats, total_bytes = accumulate(np.full(256, math.log(256)), targets, token_bytes)
    assert bits_per_byte(nats, total_bytes) == pytest.approx(8.0)


def test_zero_bytes_is_an_error():
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)


def test_load_token_bytes(tiny_dataset):
    assert load_token_bytes(tiny_dataset["tokenizer_dir"]).shape == (512,)
