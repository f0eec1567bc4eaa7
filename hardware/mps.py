"""Apple GPU through torch's Metal Performance Shaders backend (used when MLX is not installed).

- float32, no autocast: M1-M4 GPUs run bf16/fp16 matmuls at the fp32 rate, so autocast would only save
  memory bandwidth, and MPS autocast coverage differs across macOS and torch releases.
- No torch.compile (inductor's MPS support is experimental); attention is the banded sdpa path.
- MPS has no peak-memory counter: the driver's current allocation is reported instead (it is at its
  largest right after a training step, which is when the trainer reads it).
"""

from __future__ import annotations

import torch

from hardware.apple import chip_name
from hardware.base import Adapter
from hardware.peak_flops import APPLE


class MPSAdapter(Adapter):
    name = "mps"
    fixed_preset = "apple"
    attention_impl = "sdpa"
    should_compile = False
    flops_table = APPLE

    @property
    def device(self) -> torch.device:
        return torch.device("mps")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.float32

    def synchronize(self) -> None:
        torch.mps.synchronize()

    def peak_memory_bytes(self) -> int:
        return int(torch.mps.driver_allocated_memory())

    def device_name(self) -> str:
        return chip_name()
