"""Peak dense bf16 matmul FLOPS per device, the one place these numbers live (MFU = achieved / peak).

Figures are vendor datasheet numbers WITHOUT structured sparsity (datasheets often print the 2:4 sparse
number, twice as large). A device that no key matches gets None: MFU then stays empty rather than being
computed against a guess. Names are matched by substring after lower-casing and dropping everything but
letters and digits ("NVIDIA H100 PCIe" -> "nvidiah100pcie"), longest key first, so "H100 PCIe" wins over
"H100". Each vendor has its own table so that an Apple key like "M4" can never match "SXM4" in an NVIDIA
name.
"""

from __future__ import annotations

import re

NVIDIA = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,     # datasheet: 1,671 TFLOPS with sparsity
    "H100": 989.5e12,       # SXM5; torch names it "NVIDIA H100 80GB HBM3"
    "H200 NVL": 835e12,     # datasheet: 1,671 TFLOPS with sparsity
    "H200": 989.5e12,       # SXM, also matches GH200
    "H800": 989.5e12,       # export variant of the H100 SXM: same compute, less interconnect
    "B200": 2250e12,        # HGX B200: 2.25 PFLOPS dense FP16/BF16 per GPU
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362.05e12,
    "L40": 181.05e12,       # without it "NVIDIA L40" would match the L4's key
    "L4": 121e12,
    "RTX 5090": 209.5e12,
    "RTX 4090": 165.2e12,   # with FP32 accumulate, which is what torch uses
    "RTX 3090": 71e12,      # with FP32 accumulate
}

AMD = {
    "MI300X": 1307.4e12,
    "MI325X": 1307.4e12,
    "MI300A": 980.6e12,
    "MI250X": 383e12,
    "MI250": 362.1e12,
}

INTEL_GAUDI = {
    "Gaudi 3": 1835e12,     # Intel Gaudi 3 white paper: 1,835 TFLOPS BF16 (MME)
    "Gaudi 2": 432e12,      # Intel's published MME BF16 figure; lower than its FP8 number (865)
}

# Apple GPUs: FP32 peak of the largest GPU configuration of each chip (GPU cores x 128 ALUs x 2 x clock),
# from Apple's and reviewers' published figures. bf16 runs at the FP32 rate on M1-M4, so this is also the
# bf16 peak. Uncertain to about 15% (binned chips have fewer GPU cores, clocks are not published for all),
# so an Apple MFU is indicative, not comparable to a datacenter MFU.
APPLE = {
    "M1": 2.6e12, "M1 Pro": 5.2e12, "M1 Max": 10.4e12, "M1 Ultra": 21.2e12,
    "M2": 3.6e12, "M2 Pro": 6.8e12, "M2 Max": 13.6e12, "M2 Ultra": 27.2e12,
    "M3": 4.1e12, "M3 Pro": 7.4e12, "M3 Max": 16.4e12, "M3 Ultra": 28.4e12,
    "M4": 4.3e12, "M4 Pro": 9.2e12, "M4 Max": 18.4e12,
}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def lookup(device_name: str | None, table: dict[str, float]) -> float | None:
    """Peak FLOPS of the most specific key of `table` contained in `device_name`, else None."""
    if not device_name:
        return None
    name = _squash(device_name)
    for key in sorted(table, key=lambda k: len(_squash(k)), reverse=True):
        if _squash(key) in name:
            return table[key]
    return None
