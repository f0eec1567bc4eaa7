"""val_bpb: bits per byte of the validation text. numpy only, shared by the torch and MLX evaluators.

val_bpb = (sum of cross-entropy in nats over scored target tokens) / (ln 2 * sum of their UTF-8 bytes).
Per byte, not per token, so tokenizers of different vocabulary sizes compare fairly. Special tokens
(BOS) stand for no text: they have 0 bytes and are left out of both sums, as are padding targets (-1).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from data.errors import DataError

TOKEN_BYTES_FILE = "token_bytes.npy"


def load_token_bytes(tokenizer_dir: str | Path) -> np.ndarray:
    """int32[vocab_size]: each token's UTF-8 byte length, 0 for special tokens."""
    path = Path(tokenizer_dir) / TOKEN_BYTES_FILE
    if not path.is_file():
        raise DataError(f"No byte-length table at {path}; build the tokenizer with `autoresearch prepare` or `dvc repro`.")
    return np.load(path)


def accumulate(losses_nats: np.ndarray, targets: np.ndarray, token_bytes: np.ndarray) -> tuple[float, int]:
    """(sum of nats, sum of bytes) over the targets that count: not padding (-1), not zero-byte tokens."""
    losses = np.asarray(losses_nats, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets).reshape(-1)
    valid = targets >= 0
    target_bytes = np.where(valid, token_bytes[np.where(valid, targets, 0)], 0)
    counted = target_bytes > 0
    return float(losses[counted].sum()), int(target_bytes.sum())


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    if total_bytes <= 0:
        raise ValueError("bits_per_byte needs at least one scored byte; evaluate on more than zero target tokens")
    return float(total_nats) / (math.log(2) * float(total_bytes))
