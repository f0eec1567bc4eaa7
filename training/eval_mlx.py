"""val_bpb with the MLX model; the metric arithmetic is data.metric's, shared with torch."""
from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np

from data.loader import validation_batches
from data.metric import accumulate, bits_per_byte, load_token_bytes
from models.gpt import GPTConfig
from models.gpt_mlx import GPTMLX, set_parameter
from training.checkpoint import load_checkpoint
from training.data_paths import shard_dir, tokenizer_dir
from training.loop_mlx import use_best_mlx_device


def evaluate_mlx(cfg: dict, exp_dir: Path) -> dict:
    use_best_mlx_device()
    arrays, model_config = load_checkpoint(exp_dir)
    model = GPTMLX(GPTConfig(**model_config))
    for name, array in arrays.items():
        set_parameter(model, name, mx.array(array))
    token_bytes = load_token_bytes(tokenizer_dir(cfg))
    train_cfg = cfg["train"]
    total_nats, total_bytes, scored = 0.0, 0, 0
    for inputs, targets in validation_batches(shard_dir(cfg), int(train_cfg["eval_batch_size"]),
                                              int(train_cfg["seq_len"]), int(train_cfg["eval_tokens"])):
        losses = model.loss(mx.array(inputs.astype(np.int32)), mx.array(targets.astype(np.int32)), reduction="none")
        nats, nbytes = accumulate(np.array(losses.astype(mx.float32), dtype=np.float64), targets, token_bytes)
        total_nats += nats
        total_bytes += nbytes
        scored += int((targets >= 0).sum())
    return {"status": "ok", "val_bpb": bits_per_byte(total_nats, total_bytes), "eval_tokens": scored,
            "eval_bytes": int(total_bytes), "backend": "mlx"}
