"""hardware/energy.py with fake meters: RAPL files that wrap, NVML and AMD SMI modules, hl-smi's power draw."""
from __future__ import annotations

import subprocess
import sys
import types

import pytest

import hardware
from hardware.energy import (JOULES_PER_KWH, Counter, EnergyMeter, amd_counters, gaudi_counters, measure_energy,
                             nvidia_counters, rapl_counters)


def write_zone(root, name: str, energy_uj: int, range_uj: int = 1_000_000_000) -> None:
    zone = root / name
    zone.mkdir(exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")


def test_rapl_counts_each_package_across_a_wrap(tmp_path):
    write_zone(tmp_path, "intel-rapl:0", 999_000_000)            # 1 J below its 1000 J range
    write_zone(tmp_path, "intel-rapl:1", 10_000_000)
    write_zone(tmp_path, "intel-rapl:0:0", 5_000_000)           # a subzone (core): counted by its package
    counters = rapl_counters(tmp_path)
    assert [c.name for c in counters] == ["rapl intel-rapl:0", "rapl intel-rapl:1"]
    meter = EnergyMeter(counters)
    meter.sample()
    write_zone(tmp_path, "intel-rapl:0", 3_000_000)             # wrapped: 1 J to the top, then 3 J
    write_zone(tmp_path, "intel-rapl:1", 30_000_000)
    meter.sample()
    write_zone(tmp_path, "intel-rapl:0", 9_000_000)
    meter.sample()
    assert [c.total for c in counters] == [pytest.approx(10.0), pytest.approx(20.0)]


def test_a_counter_reset_without_a_known_range_adds_nothing():
    readings = iter([50.0, 80.0, 5.0, 7.0])
    counter = Counter("nvml", lambda: next(readings))
    for _ in range(4):
        counter.sample()
    assert counter.total == pytest.approx(30.0 + 0.0 + 2.0)


def test_the_meter_samples_in_the_background_and_reports_kwh():
    joules = {"now": 0.0}
    meter = EnergyMeter([Counter("fake", lambda: joules["now"])], every_seconds=0.01)
    with meter:
        for _ in range(20):
            joules["now"] += 36_000.0
            __import__("time").sleep(0.002)
    assert meter.kwh == pytest.approx(20 * 36_000.0 / JOULES_PER_KWH)


def test_a_meter_that_stops_answering_gives_no_figure_rather_than_a_failed_training():
    calls = {"n": 0}

    def flaky() -> float:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("driver went away")
        return 1.0

    with EnergyMeter([Counter("fake", flaky)], every_seconds=60) as meter:
        pass
    assert meter.kwh is None


def test_nvml_reads_millijoules_of_the_first_visible_gpu(monkeypatch):
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: f"gpu{index}",
        nvmlDeviceGetHandleByUUID=lambda uuid: uuid,
        nvmlDeviceGetTotalEnergyConsumption=lambda handle: {"gpu3": 7_500_000, "GPU-abc": 1_000}[handle])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert nvidia_counters()[0].read_joules() == pytest.approx(7_500.0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    assert nvidia_counters()[0].read_joules() == pytest.approx(1.0)


@pytest.mark.parametrize("key", ["energy_accumulator", "power"])
def test_amd_smi_reads_its_accumulator_times_the_resolution(monkeypatch, key):
    fake = types.SimpleNamespace(
        amdsmi_init=lambda: None, amdsmi_get_processor_handles=lambda: ["gpu0", "gpu1"],
        amdsmi_get_energy_count=lambda handle: {key: 2_000_000 if handle == "gpu1" else 0, "counter_resolution": 15.3,
                                                "timestamp": 0})
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    assert amd_counters()[0].read_joules() == pytest.approx(2_000_000 * 15.3 / 1e6)


def test_gaudi_integrates_hl_smi_power_draw_of_its_module(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/hl-smi")
    monkeypatch.setenv("HABANA_VISIBLE_MODULES", "2")
    draws, times = iter([100.0, 300.0, 300.0]), iter([0.0, 10.0, 20.0])

    def run(args, **kwargs):
        assert args[:3] == ["/usr/bin/hl-smi", "-Q", "module_id,power.draw"]
        return subprocess.CompletedProcess(args, 0, f"0, 50\n2, {next(draws)}\n", "")

    counter = gaudi_counters(run, clock=lambda: next(times))[0]
    for _ in range(3):
        counter.sample()
    assert counter.total == pytest.approx(10 * 200.0 + 10 * 300.0)


def test_no_meter_means_an_empty_figure(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed: import fails
    with measure_energy(hardware.get_adapter("cuda")) as energy:
        pass
    assert energy.kwh is None
    with measure_energy(hardware.get_adapter("mps")) as energy:
        pass
    assert energy.kwh is None


def test_a_training_writes_the_meters_energy_into_its_metrics(monkeypatch, tmp_path, tiny_dataset):
    """Through the real training entry point (in this process): the meter runs around the training and its kWh
    lands in metrics.json, where the decide step copies it into the ledger row; on this machine's CPU, with no
    readable RAPL, the same training records None."""
    import json

    from hardware.cpu import CPUAdapter
    from tests.training_helpers import make_experiment
    from training import entry

    monkeypatch.setattr(entry, "die_with_parent", lambda: None)
    monkeypatch.setenv("PYTORCH_ALLOC_CONF", "expandable_segments:True")  # main() sets it; undone after the test
    exp_dir = make_experiment(tmp_path, tiny_dataset, ["budget.steps=3"])
    joules = {"read": 0.0}

    def fake_rapl() -> list[Counter]:
        def read() -> float:
            joules["read"] += 900.0  # 900 J more at every read: the meter's first and last reads bracket the training
            return joules["read"]
        return [Counter("fake rapl", read)]

    monkeypatch.setattr(CPUAdapter, "energy_counters", lambda adapter: fake_rapl())
    assert entry.main([str(exp_dir)]) == 0
    metrics = json.loads((exp_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["energy_kwh"] > 0
    assert metrics["energy_kwh"] == pytest.approx((joules["read"] - 1800.0) / JOULES_PER_KWH)  # minus probe, start

    monkeypatch.setattr(CPUAdapter, "energy_counters", lambda adapter: [])
    assert entry.main([str(exp_dir)]) == 0
    assert json.loads((exp_dir / "metrics.json").read_text())["energy_kwh"] is None
