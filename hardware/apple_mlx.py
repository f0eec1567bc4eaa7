"""Apple GPU through MLX (models/gpt_mlx.py and optim/muon_mlx.py instead of the torch pair).

- float32: the MLX port runs in fp32 (bf16 brings no matmul speed on M1-M4, see hardware/mps.py).
- should_compile False: mx.compile of the step function is possible, but the shapes are small and the
  first-call trace would eat into a short budget; the trainer may still apply mx.compile when forced.
- attention_impl "mlx": the port has its own attention (mask-based sliding window).
- Memory from mx.get_peak_memory / mx.reset_peak_memory (mx.metal.* in older MLX releases).
No torch is imported here: an MLX-only machine needs no torch.
"""

from __future__ import annotations

from contextlib import nullcontext

from hardware.apple import chip_name
from hardware.base import Adapter
from hardware.peak_flops import APPLE


def _mx():
    import mlx.core as mx

    return mx


def _memory_fn(name: str):
    mx = _mx()
    return getattr(mx, name, None) or getattr(mx.metal, name)


class MLXAdapter(Adapter):
    name = "mlx"
    framework = "mlx"
    fixed_preset = "apple"
    attention_impl = "mlx"
    should_compile = False
    flops_table = APPLE
    speed_probe_size = 1024  # ~9 GFLOP per probe: a few ms on an M-series GPU

    @property
    def device(self):
        return _mx().gpu

    @property
    def autocast_dtype(self):
        return _mx().float32

    def setup(self) -> None:
        # The Metal GPU where there is one; Linux's mlx[cpu] (the tests) has only the CPU.
        mx = _mx()
        mx.set_default_device(mx.gpu if mx.metal.is_available() else mx.cpu)

    def autocast(self):
        return nullcontext()

    def compile(self, model):
        return model  # mx.compile wraps functions, not modules: the trainer compiles its step function

    def synchronize(self) -> None:
        _mx().synchronize()

    def reset_peak_memory(self) -> None:
        _memory_fn("reset_peak_memory")()

    def peak_memory_bytes(self) -> int:
        return int(_memory_fn("get_peak_memory")())

    def device_name(self) -> str:
        return chip_name()
