"""The torch training process, shared by every torch backend (CUDA, ROCm, Gaudi, MPS, CPU).

The model knows nothing about hardware: the backend adapter supplies device, autocast dtype, compile policy
and attention kernel, and this module applies them around the model.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from data.loader import TrainLoader
from hardware import get_adapter
from models.attention import set_attention_impl
from models.gpt import GPT
from models.hparams import GPTConfig, grad_accum_steps
from optim import build_optimizer
from training.budget import Budget
from training.checkpoint import save_checkpoint
from training.run_config import shard_dir, vocab_size
from training.faults import Fault, InjectedOutOfMemory
from training.loop import budgeted_training
from training.metrics import training_metrics
from training.outcome import TrainingFailure


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
    return GPT(model_config).to(adapter.device)  # GPT() initialises its weights (init_weights) itself


def train_torch(cfg: dict, exp_dir: Path, backend: str) -> dict:
    started = time.time()
    adapter = get_adapter(backend)
    adapter.setup()
    hp, train_cfg = cfg["hparams"], cfg["train"]
    budget = Budget.from_config(cfg["budget"])
    seq_len, device_batch = int(train_cfg["seq_len"]), int(hp["batch"]["device_batch_size"])
    accum = grad_accum_steps(int(hp["batch"]["total_batch_tokens"]), device_batch, seq_len)

    compiled = compile_enabled(train_cfg.get("compile", "auto"), adapter, budget.kind)
    attention_kernel = adapter.attention_kernel(compiled, seq_len)
    set_attention_impl(attention_kernel)
    model = build_model(cfg, adapter)
    optimizer = build_optimizer(model, hp["optim"], adapter.ortho_dtype)
    step_model = adapter.compile(model) if compiled else model
    loader = TrainLoader(shard_dir(cfg), batch_size=device_batch, seq_len=seq_len, seed=int(hp["seed"]))
    pin = adapter.device.type == "cuda"

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

    step_fit_checked = False  # set once the first micro-batch has been timed
    batch = None  # the next micro-batch, already on its way to the device

    def optimizer_step() -> float:
        # The loop (training/loop.py) has set the groups' lr and weight decay; Muon's momentum warmup runs
        # inside the optimizer on its own step count.
        nonlocal step_fit_checked, batch
        loss_sum = torch.zeros((), device=adapter.device)
        for index in range(accum):
            micro_start = time.time()
            loss_sum += forward_backward(*batch)
            # Load and copy the next micro-batch while the device still works on this one, so the host sync
            # below does not leave the device idle while the batch is read and pinned (as the reference does).
            batch = next_batch()
            if index == 0 and not step_fit_checked:
                adapter.synchronize()  # once per run: time one compiled micro-batch honestly
                budget.check_step_fits(time.time() - micro_start, accum)
                step_fit_checked = True
        optimizer.step()
        model.zero_grad(set_to_none=True)
        adapter.mark_step()
        # The one host sync per step: the loss for NaN/explosion checks, and honest step timing.
        return float(loss_sum.item()) / accum

    # Warm-up outside the budget: compiles forward and backward; its gradients are thrown away and no
    # optimizer step is taken, so the budgeted run starts from the initialised weights.
    warmup_start = time.time()
    forward_backward(*next_batch())
    model.zero_grad(set_to_none=True)
    batch = next_batch()
    adapter.synchronize()
    warmup_seconds = time.time() - warmup_start
    adapter.reset_peak_memory()

    try:
        result = budgeted_training(optimizer_step, optimizer.param_groups, budget, hp["schedule"],
                                   Fault.from_config(cfg.get("fault")),
                                   model.config.vocab_size, accum * device_batch * seq_len,
                                   float(train_cfg.get("log_every_seconds", 5.0)))
    except out_of_memory_errors() as exc:
        raise TrainingFailure("oom", f"out of memory during training ({type(exc).__name__})") from exc

    save_checkpoint(exp_dir, torch_state_arrays(model), dataclasses.asdict(model.config))
    peak_bytes = adapter.peak_memory_bytes()
    return training_metrics(
        result, tokens_per_step=accum * device_batch * seq_len, flops_per_token=model.flops_per_token(),
        flops_per_token_full_attention=model.flops_per_token_full_attention(), peak_flops=adapter.peak_flops(), peak_memory_bytes=peak_bytes, num_params=model.num_params(),
        warmup_seconds=warmup_seconds, started=started, backend=adapter.name, device_name=adapter.device_name(),
        extra={"compiled": compiled, "attention": attention_kernel, "grad_accum_steps": accum,
               "depth": model.config.n_layer})
