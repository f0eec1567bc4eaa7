"""Whether a block fits the device, and how many steps its budget buys, predicted before any process starts.

Peak memory is DERIVED FROM THE MODEL ITSELF by tracing, not from a table: the real models.gpt.GPT and the real
optim.build_optimizer run a training step: one micro-batch forward + backward on FakeTensors, which carry shapes
and dtypes but no data (with the gradients already allocated when the batch is accumulated, as every micro-batch
after the first runs), and two optimizer steps on the meta device (the first allocates Muon's and AdamW's state,
the second runs with it); the peak is the larger of the forward/backward peak plus the optimizer's state and the
optimizer step's own peak, plus the batches in flight and the speed probe's matrices. A TorchDispatchMode sees every storage an op creates
and a weakref callback on that storage sees it die (torch keeps a storage's Python object alive as long as
the storage lives, so the callback fires exactly when the allocator would free it, aliases that autograd keeps
only in C++ included). The running sum of live bytes, its maximum over the step, is the prediction. Why a trace
and not an analytic formula: what autograd saves for backward, what the banded attention and the CPU's fused
sdpa kernel keep, which dtype autocast leaves each tensor in, and what MuonAdamW allocates (momentum buffers,
NorMuon's second moments, the stacked group, the orthogonalisation's temporaries, Adam's two moments) would
each have to be re-derived by hand and kept in step with the code; a trace follows the code as it changes. Why
fake tensors and not the meta device: autocast and the CPU sdpa kernel are chosen by device, and a fake CPU
tensor takes the same path as a real one.

A compiled training (torch.compile: the GPUs, the CPU under a FLOP budget) does not materialise what inductor
fuses. `compiled=True` models that with one rule: a tensor an op makes is counted when it is the output of a
library kernel (matmul, attention: EXTERN_OPS) or once such a kernel reads it; everything else (elementwise
chains, reductions, the loss) is taken as fused into its consumer. The optimizer is never compiled and is
counted in full. This rule is an approximation, and a poor one so far: on the CPU's compiled cpu-preset
training it predicted 44% below the measured peak (BENCHMARKS.md), against 0.1% for eager trainings; it is not
yet checked on a GPU (bench/gpu_check.py prints it against torch.cuda.max_memory_allocated for the first GPU
session). Tracing the compiled graph itself (AOT autograd's partition on FakeTensors) would follow inductor.

The fit verdict adds the allocator's slack (ALLOCATOR_SLACK: rounding and fragmentation of a caching
allocator) and a fixed reserve (the CUDA context, or the Python process and torch on a CPU) to the predicted
peak. Steps: a steps budget is its steps, a FLOP budget is turned into steps exactly as training.loop.Budget
does, and a time budget buys seconds x FLOP/s / (FLOPs per token x tokens per step) where a speed reference
(FLOP/s the run has measured, `flops_per_second`) exists.

Cost: a block's forward/backward trace and its optimizer trace take ~0.3-3 s together on 2 idle CPU cores (more
for 32 layers, several times more on a loaded machine); both are cached, the optimizer's on the optim keys that
change an allocation only, so a change of a learning rate or schedule costs nothing.
"""
from __future__ import annotations

import math
import os
import statistics
import weakref
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Mapping

GB = 1e9
# Caching allocators round blocks up and fragment: what the device must hold beyond the live tensors.
ALLOCATOR_SLACK = 0.10
# Memory that is not the training's tensors: the CUDA context (~0.5-1 GB), or on a CPU the interpreter, torch's
# libraries and the loader (~0.6 GB resident in this project's training process).
RESERVE_BYTES = 1 * 2**30
# Library kernels whose inputs and outputs inductor materialises (everything else it may fuse away).
EXTERN_OPS = frozenset({
    "mm", "bmm", "addmm", "baddbmm", "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_backward", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_cudnn_attention_backward", "embedding_dense_backward",
})


def _live_bytes_mode():
    """A TorchDispatchMode that counts the bytes of the storages created inside it that are still alive, and their
    maximum (built here so that importing this module does not import torch)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    import torch

    device_op = torch.ops.prim.device.default

    class LiveBytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.fused = False  # compiled-model rule on (see the module docstring)
            self.live: dict[int, list] = {}  # storage id -> [weakref, bytes, counted]
            self.total = 0
            self.peak = 0

        def _count(self, entry) -> None:
            entry[2] = True
            self.total += entry[1]
            self.peak = max(self.peak, self.total)

        def _track(self, storage, counted: bool) -> None:
            key = storage._cdata
            entry = self.live.get(key)
            if entry is not None:
                if counted and not entry[2]:
                    self._count(entry)
                return

            def gone(_ref, key=key):
                dead = self.live.pop(key, None)
                if dead is not None and dead[2]:
                    self.total -= dead[1]

            entry = [weakref.ref(storage, gone), int(storage.nbytes()), False]
            self.live[key] = entry
            if counted:
                self._count(entry)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is device_op:  # thousands of metadata calls: nothing to count
                return func(*args, **kwargs)
            extern = not self.fused or func.__name__.split(".")[0] in EXTERN_OPS
            if self.fused and extern:
                for t in tree_leaves((args, kwargs)):
                    if isinstance(t, torch.Tensor):
                        self._track(t.untyped_storage(), True)
            out = func(*args, **kwargs)
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self._track(t.untyped_storage(), extern)
            return out

    return LiveBytes()


def _store_embeddings_in(model, dtype: str) -> None:
    """train.embedding_dtype as models.gpt.GPT.store_embeddings_in applies it (the token and value embeddings
    converted). Its Module.to cannot convert fake tensors (they are swapped, and fake mode holds weak references
    to them), so the same parameters are replaced by converted ones here."""
    import torch

    target = model.EMBEDDING_DTYPES[dtype]
    for embedding in (model.wte, *model.value_embeds.values()):
        if embedding.weight.dtype != target:
            embedding.weight = torch.nn.Parameter(embedding.weight.detach().to(target))


# The optim keys that change what MuonAdamW allocates (the others are learning rates, betas and momenta: numbers
# inside the same tensors). The optimizer's trace is cached on these, so a proposal of an optim value re-uses it.
def optimizer_allocation_key(optim: Mapping[str, Any]) -> tuple:
    return (float(optim["normuon_beta2"]) > 0, float(optim["weight_decay"]) > 0,
            bool(optim["cautious_weight_decay"]), min(int(optim["ns_steps"]), 6))


def _optim_section(key: tuple) -> dict:
    """A full optim section with the allocation-relevant values of `key` (the rest do not change an allocation)."""
    normuon, decays, cautious, ns_steps = key
    return {"matrix_lr": 0.02, "embedding_lr": 0.2, "unembedding_lr": 0.004, "x0_lr": 0.5, "resid_lr": 0.005,
            "weight_decay": 0.1 if decays else 0.0, "weight_decay_to_zero": False, "cautious_weight_decay": cautious,
            "adam_beta1": 0.8, "adam_beta2": 0.95, "x0_adam_beta1": 0.96, "muon_momentum": 0.95,
            "muon_momentum_warmup_steps": 10, "ns_steps": ns_steps, "normuon_beta2": 0.95 if normuon else 0.0}


@lru_cache(maxsize=256)
def traced_model_bytes(model_items: tuple, vocab_size: int, seq_len: int, device_batch: int, accumulates: bool,
                       autocast: str, compiled: bool, attention: str,
                       embedding_dtype: str = "float32") -> tuple[int, float]:
    """(peak bytes of the weights, their gradients and a micro-batch's forward and backward, training FLOPs per
    token), traced on FakeTensors under the run's autocast dtype and attention kernel ("flex" runs as
    "sdpa" here: outside a compile it is the same maths, and its fused kernel keeps what flex keeps)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from models.attention import use_attention_impl
    from models.gpt import GPT
    from models.hparams import GPTConfig

    dtype = getattr(torch, autocast)
    config = GPTConfig.from_hparams(dict(model_items), vocab_size=vocab_size, seq_len=seq_len)
    counter = _live_bytes_mode()
    with FakeTensorMode(), use_attention_impl("sdpa" if attention == "flex" else attention), counter:
        model = GPT(config)
        _store_embeddings_in(model, embedding_dtype)
        inputs, targets = (torch.empty(device_batch, seq_len, dtype=torch.long) for _ in range(2))
        if accumulates:  # every micro-batch after the first runs with the gradients of the ones before it
            for parameter in model.parameters():
                parameter.grad = torch.zeros_like(parameter)
        counter.fused = compiled
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = model(inputs, targets)
        loss.backward()
        counter.fused = False
        del loss
        flops_per_token = model.flops_per_token()
        peak = counter.peak
        del model, inputs, targets
    return peak, float(flops_per_token)


@lru_cache(maxsize=256)
def traced_optimizer_bytes(model_items: tuple, vocab_size: int, seq_len: int, allocation_key: tuple,
                           ortho_dtype: str, embedding_dtype: str = "float32") -> tuple[int, int]:
    """(peak bytes of an optimizer step with the weights, gradients and state alive, bytes of the state) of
    optim.build_optimizer's MuonAdamW over the block's model, traced on the meta device (shapes are all an
    optimizer's allocations depend on, and meta tensors are cheaper than fake ones). Two steps: the first
    allocates the state, the second runs with it, as every later step does."""
    import torch

    from models.gpt import GPT
    from models.hparams import GPTConfig
    from optim import build_optimizer

    config = GPTConfig.from_hparams(dict(model_items), vocab_size=vocab_size, seq_len=seq_len)
    counter = _live_bytes_mode()
    with torch.device("meta"), counter:
        model = GPT(config)
        _store_embeddings_in(model, embedding_dtype)  # their Adam state is made like them
        optimizer = build_optimizer(model, _optim_section(allocation_key), getattr(torch, ortho_dtype))
        for _ in range(2):
            for parameter in model.parameters():
                parameter.grad = torch.zeros_like(parameter)
            optimizer.step()
            model.zero_grad(set_to_none=True)
        state = sum(t.untyped_storage().nbytes() for values in optimizer.state.values()
                    for t in values.values() if isinstance(t, torch.Tensor))
        peak = counter.peak
        del model, optimizer
    return peak, int(state)


def traced_peak_bytes(hparams: Mapping[str, Any], vocab_size: int, seq_len: int, device: "DeviceFacts") -> tuple[int, float]:
    """(peak bytes of a training step, FLOPs per token): the larger of the forward/backward peak with the
    optimizer's state alive and the optimizer step's own peak, plus the batches in flight (this micro-batch and the
    next one, inputs and targets) and the speed probe's two matrices (training.loop.SpeedProbe)."""
    batch = hparams["batch"]
    from models.hparams import grad_accum_steps

    device_batch = int(batch["device_batch_size"])
    accumulates = grad_accum_steps(int(batch["total_batch_tokens"]), device_batch, seq_len) > 1
    model_items = _items(hparams["model"])
    model_peak, flops_per_token = traced_model_bytes(model_items, vocab_size, seq_len, device_batch, accumulates,
                                                     device.autocast, bool(device.compiled), device.attention,
                                                     device.embedding_dtype)
    optimizer_peak, state = traced_optimizer_bytes(model_items, vocab_size, seq_len,
                                                   optimizer_allocation_key(hparams["optim"]), device.autocast,
                                                   device.embedding_dtype)
    itemsize = 2 if device.autocast in ("bfloat16", "float16") else 4
    fixed = 4 * device_batch * seq_len * 8 + 2 * device.probe_size ** 2 * itemsize
    return max(model_peak + state, optimizer_peak) + fixed, flops_per_token


@dataclass(frozen=True)
class DeviceFacts:
    """What the prediction needs to know of the device a run trains on (plain data: picklable, hashable)."""

    memory_bytes: int             # the device's memory (GPU) or the RAM available to a CPU training
    autocast: str = "float32"     # the adapter's autocast dtype by name
    compiled: bool = False        # the training compiles its model (train.compile and the adapter's policy)
    attention: str = "sdpa"       # the adapter's attention kernel for the run
    probe_size: int = 0           # side of the speed probe's matmuls (0: none)
    name: str = "device"          # for the sentence: "GPU", "RAM"
    embedding_dtype: str = "float32"  # train.embedding_dtype: the token and value embeddings' storage (and Adam state)
    flops_per_second: float | None = None  # measured training FLOP/s: a time budget's steps (None: unknown)


@dataclass(frozen=True)
class Prediction:
    peak_bytes: int               # live tensors at the step's peak (what torch.cuda.max_memory_allocated measures)
    memory_bytes: int             # the device's
    device_batch: int
    accum: int
    flops_per_token: float
    steps: int | None             # optimizer steps the budget buys (None: a time budget without a speed reference)
    step_seconds: float | None
    device_name: str = "device"

    @property
    def need_bytes(self) -> int:
        """What the device must hold: the peak, the allocator's slack and the fixed reserve."""
        return int(self.peak_bytes * (1 + ALLOCATOR_SLACK)) + RESERVE_BYTES

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.memory_bytes

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB

    def sentence(self) -> str:
        """One sentence: "predicted X GB of Y GB"."""
        return (f"predicted {self.need_bytes / GB:.3g} GB of {self.memory_bytes / GB:.3g} GB of {self.device_name} "
                f"({self.peak_gb:.3g} GB of tensors at device_batch_size {self.device_batch}, plus allocator slack "
                f"and {RESERVE_BYTES / GB:.2g} GB reserve)")


def _items(section: Mapping[str, Any]) -> tuple:
    return tuple(sorted((str(k), v) for k, v in section.items()))


def predict(hparams: Mapping[str, Any], seq_len: int, vocab_size: int, budget: Mapping[str, Any],
            device: DeviceFacts) -> Prediction:
    """The block's peak memory and steps on `device` (a BlockError for a block that describes no model)."""
    from models.hparams import check_block, grad_accum_steps

    check_block(hparams, seq_len)
    batch = hparams["batch"]
    device_batch = int(batch["device_batch_size"])
    accum = grad_accum_steps(int(batch["total_batch_tokens"]), device_batch, seq_len)
    peak, flops_per_token = traced_peak_bytes(hparams, int(vocab_size), int(seq_len), device)
    steps, step_seconds = budget_steps(budget, flops_per_token, int(batch["total_batch_tokens"]),
                                       device.flops_per_second)
    return Prediction(peak, int(device.memory_bytes), device_batch, accum, flops_per_token, steps, step_seconds,
                      device.name)


def budget_steps(budget: Mapping[str, Any], flops_per_token: float, tokens_per_step: int,
                 flops_per_second: float | None) -> tuple[int | None, float | None]:
    """(steps, seconds per step) the budget buys; the FLOP budget's rule is training.loop.Budget.resolve's."""
    step_flops = flops_per_token * tokens_per_step
    step_seconds = step_flops / flops_per_second if flops_per_second else None
    kind = budget.get("kind", "time")
    if kind == "steps":
        return int(budget["steps"]), step_seconds
    if kind == "flops":
        return max(1, int(float(budget["flops"]) // step_flops)), step_seconds
    if step_seconds:
        return int(float(budget["seconds"]) // step_seconds), step_seconds
    return None, None


def smaller_device_batches(hparams: Mapping[str, Any], seq_len: int) -> list[int]:
    """Device batch sizes below the block's that still divide its total batch (largest first)."""
    batch = hparams["batch"]
    sequences = int(batch["total_batch_tokens"]) // int(seq_len)
    current = int(batch["device_batch_size"])
    return [size for size in range(current - 1, 0, -1) if sequences % size == 0 and size * seq_len
            and int(batch["total_batch_tokens"]) % (size * seq_len) == 0]


def with_device_batch(hparams: Mapping[str, Any], size: int) -> dict:
    return {**hparams, "batch": {**hparams["batch"], "device_batch_size": int(size)}}


@dataclass(frozen=True)
class Fit:
    """The verdict on a block about to train: `run` (as it is), `lowered` (device_batch_size lowered, the same
    total_batch_tokens by gradient accumulation) or `skip` (not even one sequence per pass fits)."""

    status: str
    hparams: dict                 # what to train (the lowered block when lowered)
    prediction: Prediction        # of what is trained (of the block as it is when skipped)
    original: Prediction          # of the block as proposed
    note: str = ""                # one sentence for the ledger row ("" when it runs as it is)

    def ledger_fields(self) -> dict:
        return {"predicted_peak_gb": self.prediction.peak_gb, "predicted_steps": self.prediction.steps,
                "fit": self.note or None}


@dataclass(frozen=True)
class FitCheck:
    """Everything a fit verdict needs apart from the block: picklable, so proposers receive it in their context."""

    seq_len: int
    vocab_size: int
    budget: dict = field(hash=False)
    device: DeviceFacts = None  # type: ignore[assignment]

    def predict(self, hparams: Mapping[str, Any]) -> Prediction:
        return predict(hparams, self.seq_len, self.vocab_size, self.budget, self.device)

    def fits(self, hparams: Mapping[str, Any]) -> bool:
        """The block as it is fits (what an offline proposer asks before proposing it)."""
        try:
            return self.predict(hparams).fits
        except ValueError:  # BlockError: validation refuses it with its own sentence
            return True

    def decide(self, hparams: Mapping[str, Any]) -> Fit:
        original = self.predict(hparams)
        if original.fits:
            return Fit("run", dict(hparams), original, original)
        sizes = smaller_device_batches(hparams, self.seq_len)  # largest first; memory grows with the size
        # The smallest first (a block that cannot fit skips after one more trace), then a bisection for the largest.
        if not sizes or not self.predict(with_device_batch(hparams, sizes[-1])).fits:
            return Fit("skip", dict(hparams), original, original, f"not trained: {original.sentence()}")
        fitting, failing = len(sizes) - 1, -1  # indices into sizes: one known to fit, one known not to (or none)
        while fitting - failing > 1:
            middle = (fitting + failing) // 2
            if self.predict(with_device_batch(hparams, sizes[middle])).fits:
                fitting = middle
            else:
                failing = middle
        size = sizes[fitting]
        lowered = with_device_batch(hparams, size)
        prediction = self.predict(lowered)
        note = (f"device_batch_size lowered from {original.device_batch} to {size} "
                f"({prediction.accum} micro-batches per step, same total_batch_tokens): "
                f"as proposed it was {original.sentence()}")
        return Fit("lowered", lowered, prediction, original, note)

    def with_speed(self, flops_per_second: float | None) -> "FitCheck":
        return replace(self, device=replace(self.device, flops_per_second=flops_per_second))


def available_ram_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (what a CPU training may still take), else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def device_facts(adapter, compile_policy, budget_kind: str, seq_len: int,
                 flops_per_second: float | None = None, embedding_dtype: str = "float32") -> DeviceFacts:
    """The DeviceFacts of a backend adapter (hardware/) for a run with this compile policy, budget kind and
    train.embedding_dtype."""
    from training.torch_port import compile_enabled

    compiled = compile_enabled(compile_policy, adapter, budget_kind)
    memory = adapter.total_memory_bytes()
    name = "device memory"
    if memory is None:
        memory, name = available_ram_bytes() or 0, "available RAM"
    return DeviceFacts(memory_bytes=int(memory), autocast=str(adapter.autocast_dtype).replace("torch.", ""),
                       compiled=compiled, attention=adapter.attention_kernel(compiled, seq_len),
                       probe_size=int(getattr(adapter, "speed_probe_size", 0)), name=name,
                       flops_per_second=flops_per_second, embedding_dtype=embedding_dtype)


def measured_flops_per_second(rows: list[dict], peak_flops: float | None, recent: int = 5) -> float | None:
    """The run's own speed reference: the median achieved FLOP/s (MFU x the device's peak) of its last `recent`
    trainings that measured an MFU; None before the first, or where the peak is unknown (a CPU)."""
    if not peak_flops:
        return None
    rates = [float(row["mfu"]) / 100 * peak_flops for row in rows
             if row.get("mfu") is not None and math.isfinite(float(row["mfu"])) and float(row["mfu"]) > 0]
    return statistics.median(rates[-recent:]) if rates else None
