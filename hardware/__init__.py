"""Hardware routing: detect the backend, then hand the trainer one small adapter for it.

    name = hardware.detect(cfg["backend"])       # "hpu" | "rocm" | "cuda" | "mlx" | "mps" | "cpu"
    adapter = hardware.get_adapter(name)          # device, autocast dtype, compile, attention kernel, ...

Adapters are imported lazily: asking for the CPU adapter never imports a GPU vendor's package.
"""

from __future__ import annotations

from common.registry import Registry
from hardware.base import Adapter
from hardware.detection import BACKENDS, BackendUnavailable, available, detect

ADAPTERS = Registry({
    "cpu": "hardware.cpu:CPUAdapter",
    "cuda": "hardware.cuda:CUDAAdapter",
    "rocm": "hardware.rocm:ROCmAdapter",
    "mps": "hardware.mps:MPSAdapter",
    "mlx": "hardware.apple_mlx:MLXAdapter",
    "hpu": "hardware.hpu:HPUAdapter",
})

__all__ = ["ADAPTERS", "Adapter", "BACKENDS", "BackendUnavailable", "available", "detect", "get_adapter"]


def get_adapter(name: str) -> Adapter:
    """The adapter of backend `name` (as returned by detect)."""
    if name not in ADAPTERS:
        raise BackendUnavailable(f"Unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    return ADAPTERS.load(name)()
