"""val_bpb with the torch model: per-token losses in nats, summed with each target's byte length."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.loader import validation_batches
from data.metric import accumulate, bits_per_byte, load_token_bytes
from hardware import get_adapter
from models import set_attention_impl
from models.gpt import GPT, GPTConfig
from training.checkpoint import load_checkpoint
from training.data_paths import shard_dir, tokenizer_dir


def evaluate_torch(cfg: dict, exp_dir: Path, backend: str) -> dict:
    adapter = get_adapter(backend)
    adapter.setup()
    set_attention_impl(adapter.attention_impl)
    arrays, model_config = load_checkpoint(exp_dir)
    model = GPT(GPTConfig(**model_config))
    model.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()})
    model.to(adapter.device).eval()
    token_bytes = load_token_bytes(tokenizer_dir(cfg))
    train_cfg = cfg["train"]
    total_nats, total_bytes, scored = 0.0, 0, 0
    with torch.no_grad():
        for inputs, targets in validation_batches(
            shard_dir(cfg), int(train_cfg["eval_batch_size"]), int(train_cfg["seq_len"]), int(train_cfg["eval_tokens"])
        ):
            x = torch.from_numpy(inputs).to(adapter.device)
            y = torch.from_numpy(targets).to(adapter.device)
            with adapter.autocast():
                losses = model(x, y, loss_reduction="none")
            nats, nbytes = accumulate(losses.float().cpu().numpy().astype(np.float64), targets, token_bytes)
            total_nats += nats
            total_bytes += nbytes
            scored += int((targets >= 0).sum())
    return {"status": "ok", "val_bpb": bits_per_byte(total_nats, total_bytes), "eval_tokens": scored,
            "eval_bytes": int(total_bytes), "backend": adapter.name}
