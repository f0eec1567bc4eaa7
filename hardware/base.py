"""What every backend adapter offers the trainer; each backend overrides only what differs.

The trainer never branches on the backend: it asks the adapter for the device, the autocast dtype, the dtype
of Muon's orthogonalisation, whether to compile (and how), which attention kernel to use, and for
timing/memory/FLOPS facts.
"""

from __future__ import annotations

from contextlib import nullcontext

from hardware.peak_flops import lookup


class Adapter:
    name: str = "base"
    framework: str = "torch"           # which port trains and evaluates: "torch" (models/gpt.py) or "mlx"
    attention_impl: str = "sdpa"       # models.attention kernel name
    should_compile: bool = False       # torch.compile by default, for backends where the budget does not matter
    flops_table: dict[str, float] = {}  # peak bf16 FLOPS by device-name substring (hardware/peak_flops.py)
    # The environment variable that limits a child process to some of the devices (CUDA_VISIBLE_DEVICES...);
    # None where one process uses the whole machine, which then is one device slot (tasks/gpu_slots.py).
    visible_devices_env: str | None = None
    # Page-locked host batches, copied to the device without blocking: pays off where host and device memory
    # are apart (discrete GPUs); elsewhere pinning only costs time.
    pin_memory: bool = False
    # The conf/preset/NAME.yaml this backend always gets; None: chosen by the device's memory (hardware/tiers.py).
    fixed_preset: str | None = None
    # Side of the square matmul training/loop.py's SpeedProbe times (4 of them, in the autocast dtype): big enough
    # that launch overheads do not count (~0.5 TFLOP, ~1-2 ms on an H100/H200), small enough to cost <1% of a run.
    speed_probe_size: int = 4096

    @property
    def device(self):
        raise NotImplementedError

    @property
    def autocast_dtype(self):
        raise NotImplementedError

    @property
    def ortho_dtype(self):
        """dtype of Muon's orthogonalisation (optim/muon.py): the autocast dtype, i.e. bf16 exactly where the
        hardware multiplies bf16 natively; the iteration corrects its own rounding, so bf16 costs no accuracy
        that matters, while an emulated bf16 matmul is several times slower than fp32."""
        return self.autocast_dtype

    def setup(self) -> None:
        """One-time process settings (matmul precision, plugin imports); call before building the model."""

    def autocast(self):
        """Context manager for the forward pass: mixed precision where the backend profits from it."""
        import torch

        if self.autocast_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def attention_kernel(self, compiled: bool, seq_len: int) -> str:
        """The models.attention kernel for a run, compiled or not, at this sequence length."""
        return self.attention_impl

    def compiles_by_default(self, budget_kind: str) -> bool:
        """The policy train.compile=auto follows, for a "time", "flops" or "steps" budget (the CPU's depends on it)."""
        return self.should_compile

    def compile(self, model):
        """Apply this backend's compiler to a module (returns it unchanged where there is none)."""
        import torch

        # dynamic=False: every shape is fixed for a whole run, so one static graph, no shape guards to re-check.
        return torch.compile(model, dynamic=False)

    def device_ids(self) -> list[str]:
        """The devices this process sees, by the ids `visible_devices_env` takes; [] where there is no such list."""
        return []

    def mark_step(self) -> None:
        """Graph boundary after backward and after optimizer.step (Gaudi lazy mode); no-op elsewhere."""

    def synchronize(self) -> None:
        """Wait for queued device work, so that wall-clock timings are honest."""

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory measurement (no-op where the backend cannot)."""

    def peak_memory_bytes(self) -> int:
        return 0

    def device_name(self) -> str:
        return self.name

    def total_memory_bytes(self) -> int | None:
        """The device's memory, which picks the preset (hardware/tiers.py); None where it is not known."""
        return None

    def peak_flops(self) -> float | None:
        """Peak dense bf16 FLOPS of this device, or None when unknown (MFU then stays empty)."""
        return lookup(self.device_name(), self.flops_table)

    def energy_counters(self) -> list:
        """The device's own energy meters (hardware.energy.Counter), read by hardware.energy.measure_energy in the
        training process; [] where the hardware reports none (energy_kwh then stays empty). A meter that needs a
        vendor library imports it here, so only its own backend pays for it."""
        return []
