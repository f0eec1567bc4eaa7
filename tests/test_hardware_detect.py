"""Backend detection priority, overrides, errors, adapter routing and the peak-FLOPS table."""

import re
from pathlib import Path

import pytest
import torch

import hardware
from hardware import detection
from hardware.peak_flops import AMD, APPLE, INTEL_GAUDI, NVIDIA, lookup
from tests.project_packages import package_files


@pytest.fixture
def machine(monkeypatch):
    """Pretend a machine has exactly the given backends (cpu always)."""
    monkeypatch.delenv(detection.ENV_VAR, raising=False)

    def have(*names):
        for name in detection.BACKENDS:
            if name != "cpu":
                monkeypatch.setattr(detection, f"{name}_available", lambda present=name in names: present)

    return have


@pytest.mark.parametrize("present,expected", [
    ((), "cpu"),
    (("mps",), "mps"),
    (("mlx", "mps"), "mlx"),
    (("cuda", "mlx", "mps"), "cuda"),
    (("rocm", "cuda"), "rocm"),
    (("hpu", "rocm", "cuda", "mlx", "mps"), "hpu"),
])
def test_auto_priority(machine, present, expected):
    machine(*present)
    assert hardware.detect() == expected
    assert hardware.detect("auto") == expected


def test_requested_and_env_override(machine, monkeypatch):
    machine("cuda")
    assert hardware.detect("cpu") == "cpu"
    assert hardware.detect("CUDA") == "cuda"
    monkeypatch.setenv("AUTORESEARCH_BACKEND", "cpu")
    assert hardware.detect() == "cpu" and hardware.detect("cuda") == "cpu"  # the environment wins


def test_missing_backend_is_one_clear_sentence(machine, monkeypatch):
    machine("mps")
    with pytest.raises(hardware.BackendUnavailable) as err:
        hardware.detect("cuda")
    message = str(err.value)
    assert "cuda" in message and "mps, cpu" in message and message.count(".") == 1 and "\n" not in message
    monkeypatch.setenv("AUTORESEARCH_BACKEND", "hpu")
    with pytest.raises(hardware.BackendUnavailable, match="AUTORESEARCH_BACKEND=hpu"):
        hardware.detect()
    monkeypatch.setenv("AUTORESEARCH_BACKEND", "tpu")
    with pytest.raises(hardware.BackendUnavailable, match="Unknown backend"):
        hardware.detect()
    with pytest.raises(hardware.BackendUnavailable, match="Unknown backend"):
        hardware.get_adapter("tpu")


def _fake_module(name, **attributes):
    import types

    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


@pytest.mark.parametrize("machine_kind,expected", [
    ("nvidia", ["cuda", "cpu"]),
    ("amd", ["rocm", "cpu"]),
    ("gaudi", ["hpu", "cpu"]),
    ("gaudi without a card", ["cpu"]),
    ("apple silicon", ["mlx", "mps", "cpu"]),
    ("intel mac", ["mps", "cpu"]),
    ("cpu only", ["cpu"]),
])
def test_each_probe_answers_from_what_torch_and_the_platform_say(monkeypatch, machine_kind, expected):
    """The probes on fake machines: the answers are written out, not derived from the probes' own rules."""
    import sys

    hip = "6.2" if machine_kind == "amd" else None
    gpu = machine_kind in ("nvidia", "amd")
    apple = machine_kind in ("apple silicon", "intel mac")
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: apple)
    monkeypatch.setattr(detection.sys, "platform", "darwin" if apple else "linux")
    monkeypatch.setattr(detection.platform, "machine", lambda: "arm64" if machine_kind == "apple silicon" else "x86_64")
    metal = _fake_module("mlx.core.metal", is_available=lambda: True)
    monkeypatch.setitem(sys.modules, "mlx", _fake_module("mlx"))
    monkeypatch.setitem(sys.modules, "mlx.core", _fake_module("mlx.core", metal=metal))
    if machine_kind.startswith("gaudi"):
        cards = 1 if machine_kind == "gaudi" else 0
        hpu = _fake_module("habana_frameworks.torch.hpu", is_available=lambda: True, device_count=lambda: cards)
        monkeypatch.setitem(sys.modules, "habana_frameworks", _fake_module("habana_frameworks"))
        monkeypatch.setitem(sys.modules, "habana_frameworks.torch", _fake_module("habana_frameworks.torch", hpu=hpu))
        monkeypatch.setitem(sys.modules, "habana_frameworks.torch.hpu", hpu)
    else:
        monkeypatch.setitem(sys.modules, "habana_frameworks", None)  # `import habana_frameworks...` fails
    monkeypatch.delenv(detection.ENV_VAR, raising=False)
    assert hardware.available() == expected
    assert hardware.detect() == expected[0]


def test_real_probes_answer_here_without_raising():
    """On the real machine: cpu always, last; a CUDA-like device exactly where torch sees one."""
    found = hardware.available()
    assert found[-1] == "cpu" and len(found) == len(set(found))
    assert bool({"cuda", "rocm"} & set(found)) is torch.cuda.is_available()


@pytest.mark.parametrize("name,attention,compile_,dtype", [
    ("cuda", "flex", True, torch.bfloat16),  # cpu: its dtype follows the CPU's flags (tests/test_hardware_cpu.py)
    ("rocm", "sdpa", True, torch.bfloat16),
    ("hpu", "sdpa", True, torch.bfloat16),
    ("mps", "sdpa", False, torch.float32),
])
def test_adapter_policies(name, attention, compile_, dtype):
    adapter = hardware.get_adapter(name)
    assert adapter.name == name and adapter.attention_impl == attention and adapter.should_compile is compile_
    assert adapter.autocast_dtype == dtype
    assert adapter.device.type == {"rocm": "cuda"}.get(name, name)


@pytest.mark.parametrize("name,framework,visible_env,pin", [
    ("cuda", "torch", "CUDA_VISIBLE_DEVICES", True),
    ("rocm", "torch", "HIP_VISIBLE_DEVICES", True),  # HIP's own list; pinning as on CUDA (same device API)
    ("hpu", "torch", None, False),
    ("mps", "torch", None, False),
    ("cpu", "torch", None, False),
    ("mlx", "mlx", None, False),
])
def test_adapters_answer_what_the_trainer_and_the_device_slots_ask(name, framework, visible_env, pin):
    """The port (training.entry.port_for), the device slots (tasks/gpu_slots.py) and host-batch pinning ask
    the adapter; nothing outside hardware/ keys on a backend's name."""
    adapter = hardware.get_adapter(name)
    assert (adapter.framework, adapter.visible_devices_env, adapter.pin_memory) == (framework, visible_env, pin)


def test_no_module_outside_hardware_branches_on_a_backend_name():
    root = Path(__file__).resolve().parents[1]
    names = "|".join(detection.BACKENDS)
    pattern = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    found = [f"{path.relative_to(root)}:{number}: {line.strip()}"
             for path in package_files("hardware")
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_cpu_adapter_works_here():
    cpu = hardware.get_adapter("cpu")
    cpu.setup()
    cpu.synchronize()
    cpu.reset_peak_memory()
    cpu.mark_step()
    assert cpu.peak_memory_bytes() > 0 and cpu.device_name() and cpu.peak_flops() is None
    with cpu.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == cpu.autocast_dtype  # bf16 where native


def test_routing_with_fake_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    assert hardware.get_adapter("cuda").peak_flops() == 989.5e12
    assert hardware.get_adapter("rocm").peak_flops() is None  # an NVIDIA name is not in the AMD table
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "AMD Instinct MI300X")
    assert hardware.get_adapter("rocm").peak_flops() == 1307.4e12
    mlx_adapter = hardware.get_adapter("mlx")
    assert mlx_adapter.attention_impl == "mlx" and mlx_adapter.should_compile is False
    monkeypatch.setattr(type(mlx_adapter), "device_name", lambda self: "Apple M2 Max")
    assert mlx_adapter.peak_flops() == 13.6e12


@pytest.mark.parametrize("name,table,expected", [
    ("NVIDIA H100 80GB HBM3", NVIDIA, 989.5e12),
    ("NVIDIA H100 PCIe", NVIDIA, 756e12),
    ("NVIDIA H200", NVIDIA, 989.5e12),
    ("NVIDIA A100-SXM4-80GB", NVIDIA, 312e12),
    ("NVIDIA GeForce RTX 4090", NVIDIA, 165.2e12),
    ("NVIDIA GeForce RTX 5090", NVIDIA, 209.5e12),
    ("NVIDIA A800-SXM4-80GB", NVIDIA, 312e12),
    ("Tesla T4", NVIDIA, None),
    ("AMD Instinct MI300X", AMD, 1307.4e12),
    ("GAUDI2", INTEL_GAUDI, 432e12),
    ("Intel Gaudi 3", INTEL_GAUDI, 1835e12),
    ("Apple M1", APPLE, 2.6e12),
    ("Apple M1 Ultra", APPLE, 21.2e12),
    ("Apple M3 Pro", APPLE, 7.4e12),
    ("", NVIDIA, None),
    (None, NVIDIA, None),
])
def test_peak_flops_lookup(name, table, expected):
    assert lookup(name, table) == expected


def test_unknown_nvidia_name_is_not_mistaken_for_an_apple_chip():
    # "SXM4" contains "M4": harmless only because each adapter looks in its own vendor's table
    assert lookup("NVIDIA Future-SXM4", NVIDIA) is None
