"""The MLX training process (Apple silicon): the same budgeted loop as torch, with the MLX model and optimizer.

On Linux, mlx[cpu] runs this on the CPU (slowly), which is how the tests exercise it; on a Mac it runs on the
Metal GPU.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map

from data.loader import TrainLoader
from hardware import get_adapter
from models.gpt_mlx import GPTMLX
from models.hparams import GPTConfig, grad_accum_steps
from optim.muon_mlx import MuonAdamWMLX
from training.budget import Budget
from training.checkpoint import save_checkpoint
from training.run_config import shard_dir, vocab_size
from training.faults import Fault
from training.loop import budgeted_training
from training.metrics import training_metrics


def use_best_mlx_device() -> None:
    mx.set_default_device(mx.gpu if mx.metal.is_available() else mx.cpu)


def mlx_state_arrays(model: GPTMLX) -> dict[str, np.ndarray]:
    """Parameter names match the torch model's state_dict, so either backend can evaluate the checkpoint."""
    return {name: np.array(value.astype(mx.float32)) for name, value in tree_flatten(model.parameters())}


def build_mlx_model(cfg: dict) -> GPTMLX:
    hp = cfg["hparams"]
    mx.random.seed(int(hp["seed"]))
    config = GPTConfig.from_hparams(hp["model"], vocab_size=vocab_size(cfg), seq_len=cfg["train"]["seq_len"])
    return GPTMLX(config)


def train_mlx(cfg: dict, exp_dir: Path) -> dict:
    started = time.time()
    use_best_mlx_device()
    adapter = get_adapter("mlx")
    hp, train_cfg = cfg["hparams"], cfg["train"]
    budget = Budget.from_config(cfg["budget"])
    seq_len, device_batch = int(train_cfg["seq_len"]), int(hp["batch"]["device_batch_size"])
    accum = grad_accum_steps(int(hp["batch"]["total_batch_tokens"]), device_batch, seq_len)

    model = build_mlx_model(cfg)
    optimizer = MuonAdamWMLX(model, hp["optim"], adapter.ortho_dtype)
    loss_and_grad = nn.value_and_grad(model, model.loss)
    loader = TrainLoader(shard_dir(cfg), batch_size=device_batch, seq_len=seq_len, seed=int(hp["seed"]))

    def micro_batch():
        inputs, targets = next(loader)
        return loss_and_grad(mx.array(inputs.astype(np.int32)), mx.array(targets.astype(np.int32)))

    step_fit_checked = False  # set once the first micro-batch has been timed

    def optimizer_step() -> float:
        nonlocal step_fit_checked  # the loop (training/loop.py) has set the groups' lr and weight decay
        micro_start = time.time()
        loss_sum, grads = micro_batch()
        if not step_fit_checked:
            mx.eval(loss_sum, grads)  # once per run: time one micro-batch honestly (MLX is lazy)
            budget.check_step_fits(time.time() - micro_start, accum)
            step_fit_checked = True
        for _ in range(accum - 1):
            loss, more = micro_batch()
            loss_sum = loss_sum + loss
            grads = tree_map(lambda a, b: a + b, grads, more)
        if accum > 1:
            grads = tree_map(lambda g: g / accum, grads)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss_sum)
        return float(loss_sum.item()) / accum

    # Warm-up outside the budget (graph building, kernel JIT); no optimizer step, gradients dropped.
    warmup_start = time.time()
    mx.eval(micro_batch())
    warmup_seconds = time.time() - warmup_start
    adapter.reset_peak_memory()

    result = budgeted_training(optimizer_step, optimizer.param_groups, budget, hp["schedule"],
                               Fault.from_config(cfg.get("fault")),
                               model.config.vocab_size, accum * device_batch * seq_len,
                               float(train_cfg.get("log_every_seconds", 5.0)))
    save_checkpoint(exp_dir, mlx_state_arrays(model), dataclasses.asdict(model.config))
    num_params = sum(value.size for _, value in tree_flatten(model.parameters()))
    return training_metrics(
        result, tokens_per_step=accum * device_batch * seq_len, **_flops_per_token(model.config),
        peak_flops=adapter.peak_flops(), peak_memory_bytes=adapter.peak_memory_bytes(), num_params=num_params,
        warmup_seconds=warmup_seconds, started=started, backend="mlx", device_name=adapter.device_name(),
        extra={"compiled": False, "grad_accum_steps": accum, "depth": model.config.n_layer})


def _flops_per_token(config: GPTConfig) -> dict[str, float]:
    # One FLOPs formula for both backends: the torch model's, on a model built on the meta device (no memory).
    import torch

    from models.gpt import GPT

    with torch.device("meta"):
        model = GPT(config)
    return {"flops_per_token": model.flops_per_token(),
            "flops_per_token_full_attention": model.flops_per_token_full_attention()}
