"""The validation loop both backends share: sum nats and bytes over the pinned batches, printing progress.

The progress lines are what the orchestrator's silence watchdog listens to: an evaluation of a big model may
take minutes, and it is only killed as hung when it stops printing.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from data.loader import validation_batches
from data.metric import accumulate, bits_per_byte, load_token_bytes
from training.run_config import shard_dir, tokenizer_dir

PROGRESS_EVERY_SECONDS = 5.0


def score_validation(cfg: dict, token_losses: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict:
    """`token_losses(inputs, targets)` returns each target's loss in nats as float64; the rest is the same
    for every backend: exactly `train.eval_tokens` targets of the validation shard, weighted by their bytes."""
    token_bytes = load_token_bytes(tokenizer_dir(cfg))
    train_cfg = cfg["train"]
    wanted = int(train_cfg["eval_tokens"])
    # "test" only in `autoresearch finalize` (flows/finalize.py): the held-out split no decision reads.
    split = train_cfg.get("eval_split") or "val"
    total_nats, total_bytes, scored = 0.0, 0, 0
    print(f"eval: {wanted:,} tokens of the {'validation' if split == 'val' else split} shard", flush=True)
    started = last_print = time.monotonic()
    for inputs, targets in validation_batches(shard_dir(cfg), int(train_cfg["eval_batch_size"]),
                                              int(train_cfg["seq_len"]), wanted, split):
        nats, nbytes = accumulate(token_losses(inputs, targets), targets, token_bytes)
        total_nats += nats
        total_bytes += nbytes
        scored += int((targets >= 0).sum())
        now = time.monotonic()
        if now - last_print >= PROGRESS_EVERY_SECONDS:
            print(f"eval {scored:>12,} / {wanted:,} tokens | {now - started:6.1f}s", flush=True)
            last_print = now
    return {"status": "ok", "val_bpb": bits_per_byte(total_nats, total_bytes), "eval_tokens": scored,
            "eval_bytes": int(total_bytes), "eval_split": split}
