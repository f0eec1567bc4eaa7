"""The torch port: training and evaluation with models/gpt.py, shared by every torch backend (CUDA, ROCm,
Gaudi, MPS, CPU).

The model knows nothing about hardware: the backend adapter supplies device, autocast dtype, compile policy,
attention kernel and whether to pin host batches, and this module applies them around the model. What is
not torch's (budget, batch split, warm-up timing, the metrics record) is training/loop.py's, shared with MLX.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from models.attention import set_attention_impl
from models.gpt import GPT
from models.hparams import GPTConfig
from optim import build_optimizer
from training.checkpoint import load_checkpoint, save_checkpoint
from training.evaluate import score_validation
from training.faults import InjectedOutOfMemory
from training.loop import FirstStepFit, RunPlan, TrainingFailure, timed_warmup
from training.metrics import model_flops
from training.tensor_peak import CPUTensorPeak
from training.run_config import vocab_size


def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [InjectedOutOfMemory]
    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(errors)


def torch_state_arrays(model: torch.nn.Module) -> dict:
    return {name: tensor.detach().float().cpu().numpy() for name, tensor in model.state_dict().items()}


def compile_enabled(policy, adapter, budget_kind: str) -> bool:
    """train.compile: true or false as given; auto follows the backend adapter's policy for this budget."""
    if policy in (True, "true", "True"):
        return True
    if policy in (False, "false", "False"):
        return False
    return adapter.compiles_by_default(budget_kind)


def build_model(cfg: dict, adapter) -> GPT:
    hp = cfg["hparams"]
    model_config = GPTConfig.from_hparams(hp["model"], vocab_size=vocab_size(cfg), seq_len=cfg["train"]["seq_len"])
    torch.manual_seed(int(hp["seed"]))
    model = GPT(model_config).to(adapter.device)  # GPT() initialises its weights (init_weights) itself
    model.store_embeddings_in(cfg["train"].get("embedding_dtype") or "float32")  # bf16 on the GPU presets
    return model


def train(cfg: dict, exp_dir: Path, adapter) -> dict:
    started = time.time()
    adapter.setup()
    plan = RunPlan.from_config(cfg)
    plan.tensor_peak = CPUTensorPeak.for_device(adapter.device)  # the CPU's measured tensor peak (metrics.json)
    accum = plan.accum

    compiled = compile_enabled(cfg["train"].get("compile", "auto"), adapter, plan.budget.kind)
    attention_kernel = adapter.attention_kernel(compiled, plan.seq_len)
    set_attention_impl(attention_kernel)
    model = build_model(cfg, adapter)
    optimizer = build_optimizer(model, cfg["hparams"]["optim"], adapter.ortho_dtype)
    step_model = adapter.compile(model) if compiled else model
    loader = plan.loader()
    pin = adapter.pin_memory

    def next_batch():
        inputs, targets = next(loader)
        x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(adapter.device, non_blocking=pin), y.to(adapter.device, non_blocking=pin)

    def forward_backward(x, y) -> torch.Tensor:
        with adapter.autocast():
            loss = step_model(x, y)
        (loss / accum).backward()
        adapter.mark_step()
        return loss.detach()

    step_fit = FirstStepFit(plan.budget, accum)
    batch = None  # the next micro-batch, already on its way to the device

    def optimizer_step() -> float:
        # The loop (training/loop.py) has set the groups' lr and weight decay; Muon's momentum warmup runs
        # inside the optimizer on its own step count.
        nonlocal batch
        loss_sum = torch.zeros((), device=adapter.device)
        for index in range(accum):
            micro_start = time.time()
            loss_sum += forward_backward(*batch)
            # Load and copy the next micro-batch while the device still works on this one, so the host sync
            # below does not leave the device idle while the batch is read and pinned (as the reference does).
            batch = next_batch()
            if index == 0:
                step_fit.check(micro_start, adapter.synchronize)  # times one compiled micro-batch, once per run
        optimizer.step()
        model.zero_grad(set_to_none=True)
        adapter.mark_step()
        # The one host sync per step: the loss for NaN/explosion checks, and honest step timing.
        return float(loss_sum.item()) / accum

    def warm_up() -> None:
        # Compiles forward and backward; its gradients are thrown away and no optimizer step is taken, so the
        # budgeted run starts from the initialised weights.
        nonlocal batch
        forward_backward(*next_batch())
        model.zero_grad(set_to_none=True)
        batch = next_batch()
        adapter.synchronize()

    warmup_seconds = timed_warmup(warm_up, adapter)
    flops = model_flops(model)
    probe = plan.speed_probe(*speed_probe_workload(adapter))
    try:
        result = plan.run(optimizer_step, optimizer.param_groups, model.config.vocab_size, flops["flops_per_token"],
                          probe)
    except out_of_memory_errors() as exc:
        raise TrainingFailure("oom", f"out of memory during training ({type(exc).__name__})") from exc

    save_checkpoint(exp_dir, torch_state_arrays(model), dataclasses.asdict(model.config))
    return plan.metrics(result, adapter, flops, model.num_params(), warmup_seconds, started,
                        extra={"compiled": compiled, "attention": attention_kernel, "grad_accum_steps": accum,
                               "depth": model.config.n_layer}, probe=probe)


def speed_probe_workload(adapter, repeats: int = 4):
    """(workload, its FLOPs) for training.loop.SpeedProbe: `repeats` square matmuls of the adapter's probe size in
    its autocast dtype, on fixed inputs, waited for (mark_step for Gaudi's lazy mode, then a synchronize)."""
    n = int(adapter.speed_probe_size)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(adapter.device, adapter.autocast_dtype) for _ in range(2))

    def workload() -> None:
        for _ in range(repeats):
            torch.mm(a, b)
        adapter.mark_step()
        adapter.synchronize()

    return workload, 2.0 * n ** 3 * repeats


def evaluate(cfg: dict, exp_dir: Path, adapter) -> dict:
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
