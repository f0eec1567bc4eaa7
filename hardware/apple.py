"""The Apple chip's marketing name ("Apple M2 Max"), shared by the MPS and MLX adapters."""

from __future__ import annotations

import platform
import subprocess


def chip_name() -> str:
    try:
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "Apple"
