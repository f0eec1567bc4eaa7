"""Energy a training used, read from the hardware's own meters in the training process; None where there is none.

    with measure_energy(adapter) as energy:      # a sample every few seconds in a daemon thread
        metrics = train(...)
    metrics["energy_kwh"] = energy.kwh           # None: this hardware reports no energy

One source per vendor, each a cumulative reading in joules:
- NVIDIA: NVML's total energy counter (nvidia-ml-py, `pynvml`): millijoules since the driver loaded, 64 bits,
  Volta and newer; the board's energy, whatever else runs on it.
- AMD: AMD SMI's energy accumulator (`amdsmi`) times its counter resolution (microjoules per count).
- Intel Gaudi: hl-smi reports power draw, no energy counter: the draw is sampled and integrated over time.
- Linux CPUs: RAPL package counters (/sys/class/powercap/intel-rapl:N/energy_uj, also on AMD CPUs), where the
  kernel lets this user read them (root only since Linux 5.10). They count the whole package, other processes
  included, and wrap at max_energy_range_uj: sampled often enough to see every wrap.
The vendor libraries are optional (extras `nvidia`, `rocm`) and imported only on their own backend.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

JOULES_PER_KWH = 3.6e6
SAMPLE_SECONDS = 5.0  # RAPL wraps after ~262 kJ (~15 min at 300 W): 5 s sees every wrap; the others do not care
POWERCAP = Path("/sys/class/powercap")


@dataclass
class Counter:
    """A cumulative energy reading in joules; `wrap_joules` is where it rolls over to 0 (None: never in practice)."""

    name: str
    read_joules: Callable[[], float]
    wrap_joules: float | None = None
    last: float | None = field(default=None, repr=False)
    total: float = 0.0

    def sample(self) -> None:
        now = self.read_joules()
        if self.last is not None:
            delta = now - self.last
            if delta < 0:  # rolled over (once: samples come far more often than wraps), or reset without a range
                delta = delta + self.wrap_joules if self.wrap_joules else 0.0
            self.total += delta
        self.last = now


class PowerIntegral:
    """A power reading (watts) turned into a cumulative joules reading: trapezoids between samples."""

    def __init__(self, read_watts: Callable[[], float], clock: Callable[[], float] = time.monotonic):
        self.read_watts, self.clock = read_watts, clock
        self.joules, self.previous = 0.0, None

    def __call__(self) -> float:
        watts, now = self.read_watts(), self.clock()
        if self.previous is not None:
            then, before = self.previous
            self.joules += (now - then) * (watts + before) / 2
        self.previous = (now, watts)
        return self.joules


class EnergyMeter:
    """Sums its counters from start() to stop(), sampling every `every_seconds` in between (a daemon thread)."""

    def __init__(self, counters: list[Counter], every_seconds: float = SAMPLE_SECONDS):
        self.counters, self.every_seconds = counters, every_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.kwh: float | None = None

    def sample(self) -> None:
        for counter in self.counters:
            counter.sample()

    def start(self) -> "EnergyMeter":
        self.sample()
        self._thread = threading.Thread(target=self._run, name="energy-meter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            self._sample_quietly()

    def _sample_quietly(self) -> bool:
        try:
            self.sample()
            return True
        except Exception:  # noqa: BLE001 - a meter that stops answering must never fail a training
            return False

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        ok = self._sample_quietly()
        self.kwh = sum(counter.total for counter in self.counters) / JOULES_PER_KWH if ok else None
        return self.kwh

    def __enter__(self) -> "EnergyMeter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _NoMeter:
    """This hardware reports no energy: energy_kwh stays empty."""

    kwh = None

    def __enter__(self) -> "_NoMeter":
        return self

    def __exit__(self, *exc) -> None:
        return None


def _first_visible(variable: str) -> str:
    """The device the training uses: the first one the slot made visible, else device 0."""
    return (os.environ.get(variable) or "0").split(",")[0].strip()


def nvidia_counters() -> list[Counter]:
    import pynvml  # nvidia-ml-py

    pynvml.nvmlInit()
    visible = _first_visible("CUDA_VISIBLE_DEVICES")
    handle = (pynvml.nvmlDeviceGetHandleByIndex(int(visible)) if visible.isdigit()
              else pynvml.nvmlDeviceGetHandleByUUID(visible))
    return [Counter("nvml", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3)]


def amd_counters() -> list[Counter]:
    import amdsmi

    amdsmi.amdsmi_init()
    visible = _first_visible("HIP_VISIBLE_DEVICES")
    handle = amdsmi.amdsmi_get_processor_handles()[int(visible) if visible.isdigit() else 0]

    def read() -> float:
        reading = amdsmi.amdsmi_get_energy_count(handle)
        count = reading.get("energy_accumulator", reading.get("power"))  # renamed in ROCm 6.2's binding
        return float(count) * float(reading["counter_resolution"]) / 1e6

    return [Counter("amdsmi", read)]


def gaudi_counters(run=subprocess.run, clock: Callable[[], float] = time.monotonic) -> list[Counter]:
    executable = shutil.which("hl-smi")
    if executable is None:
        return []
    module = os.environ.get("HABANA_VISIBLE_MODULES", "").split(",")[0].strip()

    def watts() -> float:
        out = run([executable, "-Q", "module_id,power.draw", "-f", "csv,noheader,nounits"], capture_output=True,
                  text=True, timeout=10, check=True).stdout
        rows = [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]
        row = next((r for r in rows if module and r[0] == module), rows[0])
        return float(row[1].split()[0])

    return [Counter("hl-smi", PowerIntegral(watts, clock))]


def rapl_counters(root: Path = POWERCAP) -> list[Counter]:
    """One counter per CPU package zone (intel-rapl:N, not its subzones, which the package already counts)."""
    counters = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1 or not os.access(zone / "energy_uj", os.R_OK):
            continue
        try:
            wrap = int((zone / "max_energy_range_uj").read_text()) / 1e6
            path = zone / "energy_uj"
            int(path.read_text())  # readable in fact, not only by its mode
        except (OSError, ValueError):
            continue
        counters.append(Counter(f"rapl {zone.name}", lambda path=path: int(path.read_text()) / 1e6, wrap))
    return counters


def measure_energy(adapter, every_seconds: float = SAMPLE_SECONDS):
    """A context manager whose `kwh` is the energy the adapter's meters (Adapter.energy_counters) counted inside it,
    or None where the hardware reports none."""
    try:
        counters = adapter.energy_counters()
        for counter in counters:
            counter.read_joules()  # a meter that cannot be read is no meter: find out before the training starts
    except Exception:  # noqa: BLE001 - library absent (ImportError), no permission, unsupported GPU: no energy
        return _NoMeter()
    return EnergyMeter(counters, every_seconds) if counters else _NoMeter()
