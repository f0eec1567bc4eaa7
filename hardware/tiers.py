"""Which preset (conf/preset/NAME.yaml) suits the detected hardware."""
from __future__ import annotations

# Substrings of device names with datacenter memory and bandwidth: they run the seed's full setting.
DATACENTER_GPUS = ("H100", "H200", "H800", "A100", "A800", "B100", "B200", "GB200", "MI300", "MI325", "MI250", "L40")


def preset_for(backend: str, device_name: str | None) -> str:
    if backend == "cpu":
        return "cpu"
    if backend in ("mlx", "mps"):
        return "apple"
    if backend == "hpu":
        return "gaudi"
    name = (device_name or "").upper()
    if any(marker in name for marker in DATACENTER_GPUS):
        return "datacenter"
    return "consumer"
