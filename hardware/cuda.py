"""NVIDIA CUDA: bf16 autocast, torch.compile, flex_attention for the sliding windows.

- TF32 for the float32 matmuls that remain outside autocast (setup()).
- flex_attention compiles into a kernel that skips the blocks outside each layer's window, so short
  windows really save time; it needs torch.compile, which this backend uses anyway.
"""

from __future__ import annotations

import torch

from hardware.base import Adapter
from hardware.peak_flops import NVIDIA


class CUDAAdapter(Adapter):
    name = "cuda"
    attention_impl = "flex"
    should_compile = True
    flops_table = NVIDIA
    visible_devices_env = "CUDA_VISIBLE_DEVICES"
    pin_memory = True

    @property
    def device(self) -> torch.device:
        return torch.device("cuda")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.bfloat16

    def setup(self) -> None:
        torch.set_float32_matmul_precision("high")

    def device_ids(self) -> list[str]:
        return [str(index) for index in range(torch.cuda.device_count())]

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        torch.cuda.reset_peak_memory_stats()

    def peak_memory_bytes(self) -> int:
        return int(torch.cuda.max_memory_allocated())

    def device_name(self) -> str:
        return torch.cuda.get_device_name()

    def total_memory_bytes(self) -> int | None:
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)

    def energy_counters(self) -> list:
        from hardware.energy import nvidia_counters

        return nvidia_counters()
