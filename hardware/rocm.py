"""AMD ROCm: a HIP build of torch exposes the GPU through the "cuda" device API.

Differences from CUDA: the attention kernel is sdpa (ROCm's fused flash/efficient kernels; flex_attention's
Triton templates are less mature on ROCm), and torch.compile runs with its defaults (inductor generates
Triton for ROCm) with no TF32 setting to make. Peak FLOPS come from the AMD table.
"""

from __future__ import annotations

from hardware.cuda import CUDAAdapter
from hardware.peak_flops import AMD


class ROCmAdapter(CUDAAdapter):
    name = "rocm"
    attention_impl = "sdpa"
    should_compile = True
    flops_table = AMD
    visible_devices_env = "HIP_VISIBLE_DEVICES"  # HIP's own list; the rest of the device API is torch.cuda's

    def setup(self) -> None:
        pass

    def energy_counters(self) -> list:
        from hardware.energy import amd_counters

        return amd_counters()
