"""Which preset (conf/preset/NAME.yaml) suits the detected hardware.

GPUs are sorted by memory, not by name: the datacenter preset (the seed's full batch of 128 x 2048 tokens
per micro-batch) needs about 56 GB, and names mislead ("A100" is also a 40 GB card, "L40" a 48 GB one).
"""
from __future__ import annotations

# The datacenter preset's measured need (~56 GB) plus headroom for the allocator and the CUDA context.
DATACENTER_MIN_MEMORY_BYTES = 64 * 2**30


def preset_for(backend: str, total_memory_bytes: int | None) -> str:
    """The backend adapter's fixed preset (CPU, Apple, Gaudi), else the GPU tier its memory affords."""
    from hardware import get_adapter

    fixed = get_adapter(backend).fixed_preset
    if fixed:
        return fixed
    if total_memory_bytes and total_memory_bytes >= DATACENTER_MIN_MEMORY_BYTES:
        return "datacenter"
    return "consumer"  # unknown memory too: the smaller batch is the one that cannot run out of memory
