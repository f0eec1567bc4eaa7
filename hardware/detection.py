"""Which backend this process trains on: Gaudi > ROCm > CUDA > MLX > MPS > CPU, unless told otherwise.

Precedence: the AUTORESEARCH_BACKEND environment variable, then the `requested` argument (the config's
`backend`), then auto-detection. The environment wins because it is the outermost, per-machine override
(a CI runner or a user pinning one process) over a config shared across machines.

Each probe is a small module-level function that answers "is this backend usable here?" without raising;
tests monkeypatch them to exercise the routing on a machine that has none of the accelerators. This module
is named detection.py, not detect.py, so that `hardware.detect` (the function) does not shadow it.
"""

from __future__ import annotations

import os
import platform
import sys

BACKENDS = ("hpu", "rocm", "cuda", "mlx", "mps", "cpu")  # in auto-detection priority
ENV_VAR = "AUTORESEARCH_BACKEND"


class BackendUnavailable(RuntimeError):
    """The requested backend is unknown or not present on this machine; str() is one sentence."""


def hpu_available() -> bool:
    try:
        import habana_frameworks.torch.hpu as hthpu
    except Exception:
        return False
    try:
        return bool(hthpu.is_available()) and hthpu.device_count() > 0
    except Exception:
        return False


def rocm_available() -> bool:
    try:
        import torch

        return torch.version.hip is not None and torch.cuda.is_available()
    except Exception:
        return False


def cuda_available() -> bool:
    try:
        import torch

        return torch.version.hip is None and torch.cuda.is_available()
    except Exception:
        return False


def mlx_available() -> bool:
    """MLX with a Metal GPU: macOS on arm64 only (Linux's mlx[cpu] imports but has no GPU)."""
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return False
    try:
        import mlx.core as mx

        return bool(mx.metal.is_available())
    except Exception:
        return False


def mps_available() -> bool:
    try:
        import torch

        return bool(torch.backends.mps.is_available())
    except Exception:
        return False


def cpu_available() -> bool:
    return True


def available() -> list[str]:
    """Every usable backend, best first (looked up at call time, so monkeypatched probes take effect)."""
    module = sys.modules[__name__]
    return [name for name in BACKENDS if getattr(module, f"{name}_available")()]


def detect(requested: str = "auto") -> str:
    """The backend name to train on; raises BackendUnavailable for an unknown or absent backend."""
    from_env = os.environ.get(ENV_VAR, "").strip().lower()
    choice = from_env or (requested or "auto").strip().lower()
    source = f"{ENV_VAR}={from_env}" if from_env else f"backend={choice}"
    if choice != "auto" and choice not in BACKENDS:
        raise BackendUnavailable(f"Unknown backend in {source}: choose one of auto, {', '.join(BACKENDS)}.")
    found = available()
    if choice == "auto":
        return found[0]
    if choice in found:
        return choice
    raise BackendUnavailable(
        f"{source} asks for the {choice} backend, but this machine only has {', '.join(found)}: "
        f"use backend=auto or one of those."
    )
