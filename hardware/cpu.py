"""CPU: the fallback everywhere, and the backend of the tests and the 60-second CPU preset.

- float32, no autocast: bf16 autocast is only fast on CPUs with AMX or AVX512-BF16; on the rest (most
  laptops and CI runners) it emulates bf16 matmuls and is slower than float32.
- No torch.compile: compile time (tens of seconds) is a large part of a 60 s budget and the inductor CPU
  backend needs a C++ toolchain that a bare machine may lack.
- Attention: the banded sdpa path (the fused CPU sdpa kernel, flex is CUDA-only).
- Peak memory is the process's peak resident set size, which cannot be reset; peak FLOPS is None because
  CPU peak depends on cores, clocks and vector units that no name reliably gives.
"""

from __future__ import annotations

import platform
import resource
import sys

import torch

from hardware.base import Adapter


class CPUAdapter(Adapter):
    name = "cpu"
    attention_impl = "sdpa"
    should_compile = False

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.float32

    def peak_memory_bytes(self) -> int:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux kilobytes

    def device_name(self) -> str:
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine() or "cpu"

    def peak_flops(self) -> float | None:
        return None
