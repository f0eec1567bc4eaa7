"""val_bpb with the MLX model: its per-token losses, scored by training.eval_loop (shared with torch)."""
from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np

from models.hparams import GPTConfig
from models.gpt_mlx import GPTMLX, set_parameter
from training.checkpoint import load_checkpoint
from training.eval_loop import score_validation
from training.loop_mlx import use_best_mlx_device


def evaluate_mlx(cfg: dict, exp_dir: Path) -> dict:
    use_best_mlx_device()
    arrays, model_config = load_checkpoint(exp_dir)
    model = GPTMLX(GPTConfig(**model_config))
    for name, array in arrays.items():
        set_parameter(model, name, mx.array(array))

    def token_losses(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        losses = model.loss(mx.array(inputs.astype(np.int32)), mx.array(targets.astype(np.int32)), reduction="none")
        return np.array(losses.astype(mx.float32), dtype=np.float64)

    return {**score_validation(cfg, token_losses), "backend": "mlx"}
