"""Intel Gaudi (HPU), through Intel's PyTorch bridge `habana_frameworks` (Intel's Docker images or
installer; not on PyPI).

Follows Intel's documented API: importing habana_frameworks.torch.core registers the "hpu" device;
habana_frameworks.torch.hpu mirrors torch.cuda (synchronize, memory stats, device name);
torch.compile(backend="hpu_backend") is Gaudi's graph compiler (needs PT_HPU_LAZY_MODE=0); in lazy mode
htcore.mark_step() must close the graph after backward and after the optimizer step. bf16 autocast is
native on the MME. Only detection and routing are tested here (no Gaudi on the development machines).
"""

from __future__ import annotations

import os

import torch

from hardware.base import Adapter
from hardware.peak_flops import INTEL_GAUDI


def _core():
    import habana_frameworks.torch.core as htcore

    return htcore


def _hpu():
    import habana_frameworks.torch.hpu as hthpu

    return hthpu


class HPUAdapter(Adapter):
    name = "hpu"
    fixed_preset = "gaudi"
    attention_impl = "sdpa"
    should_compile = True
    flops_table = INTEL_GAUDI

    @property
    def device(self) -> torch.device:
        return torch.device("hpu")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.bfloat16

    def setup(self) -> None:
        _core()

    def compile(self, model):
        _core()
        return torch.compile(model, backend="hpu_backend")

    def mark_step(self) -> None:
        if os.environ.get("PT_HPU_LAZY_MODE", "1") != "0":
            _core().mark_step()

    def synchronize(self) -> None:
        _hpu().synchronize()

    def reset_peak_memory(self) -> None:
        _hpu().reset_peak_memory_stats()

    def peak_memory_bytes(self) -> int:
        return int(_hpu().max_memory_allocated())

    def device_name(self) -> str:
        return _hpu().get_device_name()

    def energy_counters(self) -> list:
        from hardware.energy import gaudi_counters

        return gaudi_counters()
