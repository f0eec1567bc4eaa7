"""Presets by device memory (not by name), the GPU presets' dataset, and peak FLOPS of look-alike names."""

from types import SimpleNamespace

import pytest
import torch

import hardware
from flows.compose import compose, default_overrides
from hardware.tiers import preset_for

GIB = 2**30


@pytest.mark.parametrize("name,memory,preset", [
    ("NVIDIA H100 80GB HBM3", 80 * GIB, "datacenter"),
    ("NVIDIA A100-SXM4-40GB", 40 * GIB, "consumer"),   # "A100" in the name, too little memory for the batch
    ("NVIDIA L40S", 48 * GIB, "consumer"),
    ("NVIDIA GeForce RTX 4090", 24 * GIB, "consumer"),
    ("AMD Instinct MI300X", 192 * GIB, "datacenter"),
])
def test_the_cuda_preset_follows_the_devices_memory(monkeypatch, name, memory, preset):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=memory, name=name))
    monkeypatch.setattr(hardware, "detect", lambda requested="auto": "cuda")
    assert default_overrides(["proposer=local"]) == [f"preset={preset}", "proposer=local"]


def test_presets_of_the_other_backends_and_unknown_memory():
    assert [preset_for(b, None) for b in ("cpu", "mlx", "mps", "hpu", "cuda", "rocm")] == [
        "cpu", "apple", "apple", "gaudi", "consumer", "consumer"]


def test_gpu_presets_train_on_climbmix_unless_told_otherwise():
    for preset in ("consumer", "datacenter", "gaudi"):
        assert compose([f"preset={preset}", "proposer=local"], auto=False)["dataset"]["name"] == "climbmix"
    assert compose(["preset=datacenter", "dataset=bundled", "proposer=local"], auto=False)["dataset"]["name"] == "bundled"
    for preset in ("cpu", "apple"):
        assert compose([f"preset={preset}", "proposer=local"], auto=False)["dataset"]["name"] == "bundled"


def test_l40_is_not_an_l4(monkeypatch):
    cuda = hardware.get_adapter("cuda")
    for name, peak in (("NVIDIA L40", 181.05e12), ("NVIDIA L40S", 362.05e12), ("NVIDIA L4", 121e12)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, name=name: name)
        assert cuda.peak_flops() == peak


@pytest.mark.parametrize("memory,preset", [
    (64 * GIB, "datacenter"),       # the threshold itself
    (64 * GIB - 1, "consumer"),     # one byte under it
    (int(63.5 * GIB), "consumer"),
    (int(79.2 * GIB), "datacenter"),  # what an 80 GB H100 reports
    (48 * GIB, "consumer"),
    (0, "consumer"),
])
def test_the_datacenter_preset_starts_at_64_gib(memory, preset):
    """README: a GPU with 64 GB or more gets datacenter. The threshold exactly, not cards far from it."""
    assert preset_for("cuda", memory) == preset and preset_for("rocm", memory) == preset
