"""The torch training loop, shared by every torch backend (CUDA, ROCm, Gaudi, MPS, CPU).

The model knows nothing about hardware: the backend adapter supplies device, autocast dtype, compile policy
and attention kernel, and the loop applies them around the model.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from data.loader import TrainLoader
from hardware import get_adapter
from models import set_attention_impl
from models.gpt import GPT, GPTConfig
from optim import build_optimizer
from optim.schedule import lr_multiplier
from training.budget import Budget
from training.checkpoint import save_checkpoint
from training.data_paths import shard_dir, vocab_size
from training.faults import Fault, InjectedOutOfMemory
from training.outcome import TrainingFailure, check_loss, explosion_limit, mfu_percent
from training.progress import Progress
from training.run_config import grad_accum_steps


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [InjectedOutOfMemory]
    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(errors)


def torch_state_arrays(model: torch.nn.Module) -> dict:
    return {name: tensor.detach().float().cpu().numpy() for name, tensor in model.state_dict().items()}


def should_compile(policy, adapter) -> bool:
    if policy in (True, "true", "True"):
        return True
    if policy in (False, "false", "False"):
        return False
    return bool(adapter.should_compile)


def build_model(cfg: dict, adapter) -> GPT:
    hp = cfg["hparams"]
    model_config = GPTConfig.from_hparams(hp["model"], vocab_size=vocab_size(cfg), seq_len=cfg["train"]["seq_len"])
    torch.manual_seed(int(hp["seed"]))
    model = GPT(model_config).to(adapter.device)
    model.init_weights()
    return model


def train_torch(cfg: dict, exp_dir: Path, backend: str) -> dict:
    started = time.time()
    adapter = get_adapter(backend)
    adapter.setup()
    hp, train_cfg = cfg["hparams"], cfg["train"]
    budget = Budget.from_config(cfg["budget"])
    fault = Fault.from_config(cfg.get("fault"))
    seq_len, device_batch = int(train_cfg["seq_len"]), int(hp["batch"]["device_batch_size"])
    accum = grad_accum_steps(int(hp["batch"]["total_batch_tokens"]), device_batch, seq_len)
    tokens_per_step = accum * device_batch * seq_len

    set_attention_impl(adapter.attention_impl)
    model = build_model(cfg, adapter)
    optimizer = build_optimizer(model, hp["optim"])
    compiled = should_compile(train_cfg.get("compile", "auto"), adapter)
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

    # Warm-up outside the budget: compiles forward and backward; its gradients are thrown away and no
    # optimizer step is taken, so the budgeted run starts from the initialised weights.
    warmup_start = time.time()
    x, y = next_batch()
    forward_backward(x, y)
    model.zero_grad(set_to_none=True)
    adapter.synchronize()
    warmup_seconds = time.time() - warmup_start
    adapter.reset_peak_memory()

    limit = explosion_limit(model.config.vocab_size)
    flops_per_token = model.flops_per_token()
    oom_errors = _out_of_memory_errors()
    progress = Progress(budget.describe(), float(train_cfg.get("log_every_seconds", 5.0)))
    sched_cfg = hp["schedule"]
    step, elapsed, loss_value = 0, 0.0, float("nan")
    try:
        while budget.has_room(step, elapsed):
            step_start = time.time()
            fraction = budget.progress(step, elapsed)
            lr_scale = lr_multiplier(fraction, sched_cfg["warmup_frac"], sched_cfg["warmdown_frac"], sched_cfg["final_lr_frac"])
            # Muon's momentum warmup runs inside the optimizer on its own step count; only the LR is driven here.
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lr_scale
            loss_sum = torch.zeros((), device=adapter.device)
            for micro in range(accum):
                if step > 0 or micro > 0:
                    x, y = next_batch()
                loss_sum += forward_backward(x, y)
            optimizer.step()
            model.zero_grad(set_to_none=True)
            adapter.mark_step()
            step += 1
            if fault:
                fault.trigger_process_fault(step)
            # One host sync per step: it gives the loss for NaN/explosion checks and honest step timing.
            loss_value = float(loss_sum.item()) / accum * (fault.loss_factor(step) if fault else 1.0)
            check_loss(loss_value, step, limit)
            step_seconds = time.time() - step_start
            budget.record_step(step_seconds)
            elapsed += step_seconds
            progress.update(step, budget.progress(step, elapsed), loss_value, step * tokens_per_step / elapsed, elapsed)
    except oom_errors as exc:
        raise TrainingFailure("oom", f"out of memory at step {step + 1} ({type(exc).__name__})") from exc
    finally:
        progress.close()

    save_checkpoint(exp_dir, torch_state_arrays(model), dataclasses.asdict(model.config))
    tokens = step * tokens_per_step
    tokens_per_second = tokens / elapsed if elapsed > 0 else 0.0
    peak_flops = adapter.peak_flops()
    return {
        "status": "ok",
        "steps": step,
        "tokens": tokens,
        "tokens_per_second": tokens_per_second,
        "mfu_percent": mfu_percent(flops_per_token, tokens_per_second, peak_flops),
        "flops_per_token": flops_per_token,
        "peak_memory_gb": adapter.peak_memory_bytes() / 1e9 if adapter.peak_memory_bytes() else None,
        "num_params": model.num_params(),
        "training_seconds": elapsed,
        "warmup_seconds": warmup_seconds,
        "total_seconds": time.time() - started,
        "final_train_loss": loss_value,
        "backend": adapter.name,
        "device_name": adapter.device_name(),
        "compiled": compiled,
        "grad_accum_steps": accum,
        "depth": model.config.n_layer,
    }
