"""val_bpb with the torch model: its per-token losses, scored by training.eval_loop."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hardware import get_adapter
from models.attention import set_attention_impl
from models.gpt import GPT
from models.hparams import GPTConfig
from training.checkpoint import load_checkpoint
from training.eval_loop import score_validation


def evaluate_torch(cfg: dict, exp_dir: Path, backend: str) -> dict:
    adapter = get_adapter(backend)
    adapter.setup()
    # Uncompiled, so no compile time is paid for one pass over the validation tokens; the eager kernels are
    # the fused ones (models/attention.py never runs flex eagerly). Timed in BENCHMARKS.md (CPU) and by
    # bench/gpu_check.py (GPU).
    set_attention_impl(adapter.attention_kernel(False, int(cfg["train"]["seq_len"])))
    arrays, model_config = load_checkpoint(exp_dir)
    model = GPT(GPTConfig(**model_config))
    model.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()})
    model.to(adapter.device).eval()

    def token_losses(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(inputs).to(adapter.device)
        y = torch.from_numpy(targets).to(adapter.device)
        with torch.no_grad(), adapter.autocast():
            losses = model(x, y, loss_reduction="none")
        return losses.float().cpu().numpy().astype(np.float64)

    return {**score_validation(cfg, token_losses), "backend": adapter.name}
