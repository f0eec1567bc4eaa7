"""CPU: the fallback everywhere, and the backend of the tests and the 60-second CPU preset.

- bf16 only where the CPU multiplies it natively (x86 AVX512_BF16 or AMX, Arm's BF16 extension), read from
  the CPU's feature flags: elsewhere (AVX2-only x86, most CI runners) bf16 matmuls are emulated and several
  times slower than fp32. The flag decides Muon's orthogonalisation dtype (ortho_dtype) and the autocast
  dtype of the forward pass alike.
- torch.compile for time budgets only, and only where a C++ compiler is found (inductor's CPU backend builds
  C++). Measured on the cpu preset (BENCHMARKS.md): compiled steps are about 2x faster, so a time budget buys
  twice the steps; the first compile of a shape cost 25-90 s of wall time outside the budget, later
  processes load it from inductor's on-disk cache in ~4 s. A steps budget buys nothing with it, so tests and
  step-budgeted benchmarks stay eager.
- Attention: the banded sdpa path (the fused CPU sdpa kernel; flex's backward has no CPU kernel), except
  compiled at short sequences (see attention_kernel).
- Peak memory is the process's peak resident set size, which cannot be reset; peak FLOPS is None because
  CPU peak depends on cores, clocks and vector units that no name reliably gives.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sys
from functools import lru_cache

import torch

from hardware.base import Adapter

CPUINFO = "/proc/cpuinfo"
# Under torch.compile the dense path ("naive": two matmuls, with the mask and the softmax between them fused
# by inductor) ran ~25% faster than the banded sdpa path at the cpu preset's 256 tokens (BENCHMARKS.md). Its
# scores grow as T^2, and it was measured at 256 only, so longer sequences keep the banded path.
DENSE_ATTENTION_MAX_SEQ = 256
# Feature flags (as /proc/cpuinfo spells them) of CPUs with bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo_text: str) -> set[str]:
    """The feature flags of the first processor in a /proc/cpuinfo text ("flags" on x86, "Features" on Arm)."""
    for line in cpuinfo_text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def lists_native_bf16(cpuinfo_text: str) -> bool:
    """Whether a /proc/cpuinfo text's first processor has bf16 arithmetic in hardware."""
    return bool(cpu_flags(cpuinfo_text) & NATIVE_BF16_FLAGS)


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use: $CXX, else the first of g++, clang++, c++ on PATH."""
    for name in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if name and shutil.which(name):
            return name
    return None


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (False where /proc/cpuinfo cannot be read, e.g. macOS)."""
    try:
        with open(CPUINFO) as f:
            return lists_native_bf16(f.read())
    except OSError:
        return False


class CPUAdapter(Adapter):
    name = "cpu"
    fixed_preset = "cpu"
    attention_impl = "sdpa"
    # 29 GFLOP per probe (14 ms on this 2-core AMX machine, ~0.2 s where fp32 is all there is): a probe must outlast
    # the scheduler's slices to see other jobs. Measured beside one busy process: at 512 (1-2 ms) the rate did not
    # move (a training slowed 5x read the same 775 GFLOP/s), at 1536 it fell from ~2,100 to ~750 GFLOP/s.
    speed_probe_size = 1536

    def compiles_by_default(self, budget_kind: str) -> bool:
        # A time or FLOP budget pays the compile back in steps (or seconds); a steps budget is the tests' and
        # its short runs would pay more to compile than they train.
        return budget_kind in ("time", "flops") and cxx_compiler() is not None

    def attention_kernel(self, compiled: bool, seq_len: int) -> str:
        return "naive" if compiled and seq_len <= DENSE_ATTENTION_MAX_SEQ else self.attention_impl

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.bfloat16 if native_bf16() else torch.float32

    def peak_memory_bytes(self) -> int:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux kilobytes

    def device_name(self) -> str:
        try:
            with open(CPUINFO) as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine() or "cpu"

    def peak_flops(self) -> float | None:
        return None

    def energy_counters(self) -> list:
        from hardware.energy import rapl_counters

        return rapl_counters()
