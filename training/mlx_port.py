"""The MLX port (Apple silicon): training and evaluation with models/gpt_mlx.py and optim/muon_mlx.py.

The same budgeted loop, batch split, warm-up timing and metrics record as torch (training/loop.py); this file
holds only what MLX does differently: lazy evaluation, value_and_grad, summed gradient trees. On Linux,
mlx[cpu] runs it on the CPU (slowly), which is how the tests exercise it; on a Mac it runs on the Metal GPU.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map

from models.gpt_mlx import GPTMLX, set_parameter
from models.hparams import GPTConfig
from optim.muon_mlx import MuonAdamWMLX
from training.checkpoint import load_checkpoint, save_checkpoint
from training.evaluate import score_validation
from training.loop import FirstStepFit, RunPlan, timed_warmup
from training.metrics import model_flops
from training.run_config import vocab_size


def mlx_state_arrays(model: GPTMLX) -> dict[str, np.ndarray]:
    """Parameter names match the torch model's state_dict, so either backend can evaluate the checkpoint."""
    return {name: np.array(value.astype(mx.float32)) for name, value in tree_flatten(model.parameters())}


def build_mlx_model(cfg: dict) -> GPTMLX:
    hp = cfg["hparams"]
    mx.random.seed(int(hp["seed"]))
    config = GPTConfig.from_hparams(hp["model"], vocab_size=vocab_size(cfg), seq_len=cfg["train"]["seq_len"])
    return GPTMLX(config)


def train(cfg: dict, exp_dir: Path, adapter) -> dict:
    started = time.time()
    adapter.setup()
    plan = RunPlan.from_config(cfg)
    accum = plan.accum

    model = build_mlx_model(cfg)
    optimizer = MuonAdamWMLX(model, cfg["hparams"]["optim"], adapter.ortho_dtype)
    loss_and_grad = nn.value_and_grad(model, model.loss)
    loader = plan.loader()

    def micro_batch():
        inputs, targets = next(loader)
        return loss_and_grad(mx.array(inputs.astype(np.int32)), mx.array(targets.astype(np.int32)))

    step_fit = FirstStepFit(plan.budget, accum)

    def optimizer_step() -> float:
        # The loop (training/loop.py) has set the groups' lr and weight decay.
        micro_start = time.time()
        loss_sum, grads = micro_batch()
        step_fit.check(micro_start, lambda: mx.eval(loss_sum, grads))  # MLX is lazy: evaluate to time it
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
    warmup_seconds = timed_warmup(lambda: mx.eval(micro_batch()), adapter)
    flops = _flops_per_token(model.config)
    probe = plan.speed_probe(*speed_probe_workload(adapter))
    result = plan.run(optimizer_step, optimizer.param_groups, model.config.vocab_size, flops["flops_per_token"], probe)
    save_checkpoint(exp_dir, mlx_state_arrays(model), dataclasses.asdict(model.config))
    num_params = sum(value.size for _, value in tree_flatten(model.parameters()))
    return plan.metrics(result, adapter, flops, num_params, warmup_seconds, started,
                        extra={"compiled": False, "grad_accum_steps": accum, "depth": model.config.n_layer}, probe=probe)


def speed_probe_workload(adapter, repeats: int = 4):
    """(workload, its FLOPs) for training.loop.SpeedProbe: the torch port's square matmuls, in MLX (lazy: each
    product is evaluated, so the time is the work's)."""
    n = int(adapter.speed_probe_size)
    key = mx.random.key(0)
    a, b = (mx.random.normal((n, n), key=k).astype(mx.bfloat16) for k in mx.random.split(key, 2))
    mx.eval(a, b)

    def workload() -> None:
        mx.eval(*[mx.matmul(a, b) for _ in range(repeats)])

    return workload, 2.0 * n ** 3 * repeats


def _flops_per_token(config: GPTConfig) -> dict[str, float]:
    # One FLOPs formula for both backends: the torch model's, on a model built on the meta device (no memory).
    import torch

    from models.gpt import GPT

    with torch.device("meta"):
        return model_flops(GPT(config))


def evaluate(cfg: dict, exp_dir: Path, adapter) -> dict:
    adapter.setup()
    arrays, model_config = load_checkpoint(exp_dir)
    model = GPTMLX(GPTConfig(**model_config))
    for name, array in arrays.items():
        set_parameter(model, name, mx.array(array))

    def token_losses(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        losses = model.loss(mx.array(inputs.astype(np.int32)), mx.array(targets.astype(np.int32)), reduction="none")
        return np.array(losses.astype(mx.float32), dtype=np.float64)

    return {**score_validation(cfg, token_losses), "backend": adapter.name}
