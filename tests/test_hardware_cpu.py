"""The CPU adapter: bf16 exactly where the CPU multiplies it natively, read from its feature flags."""

import pytest
import torch

import hardware
from hardware import cpu

XEON_SPR = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_ZEN2 = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: avx512_bf16\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize("text,native", [(XEON_SPR, True), (EPYC_ZEN2, False), (GRAVITON3, True), ("", False)])
def test_native_bf16_is_read_from_the_first_processors_flags(text, native):
    assert cpu.lists_native_bf16(text) is native


@pytest.mark.parametrize("native,dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_autocast_and_orthogonalisation_follow_the_flags(monkeypatch, native, dtype):
    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    adapter = hardware.get_adapter("cpu")
    assert adapter.autocast_dtype == dtype and adapter.ortho_dtype == dtype
    assert adapter.attention_impl == "sdpa" and adapter.device.type == "cpu"


def test_this_machines_answer_matches_its_cpuinfo():
    try:
        text = open(cpu.CPUINFO).read()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this platform: native_bf16() is False there by design")
    cpu.native_bf16.cache_clear()
    assert cpu.native_bf16() == any(flag in text.split() for flag in ("avx512_bf16", "amx_bf16", "bf16"))


def test_compile_by_default_only_for_time_budgets_with_a_cxx_compiler(monkeypatch):
    from training.torch_port import compile_enabled

    adapter = hardware.get_adapter("cpu")
    monkeypatch.setattr(cpu, "cxx_compiler", lambda: "g++")
    assert compile_enabled("auto", adapter, "time") is True
    assert compile_enabled("auto", adapter, "steps") is False  # a steps budget buys no steps with it
    assert compile_enabled("false", adapter, "time") is False and compile_enabled(True, adapter, "steps") is True
    monkeypatch.setattr(cpu, "cxx_compiler", lambda: None)
    assert compile_enabled("auto", adapter, "time") is False  # inductor's CPU backend would fail to build


def test_cxx_compiler_lookup(monkeypatch):
    monkeypatch.setenv("CXX", "my-cxx")
    monkeypatch.setattr(cpu.shutil, "which", lambda name: "/opt/bin/my-cxx" if name == "my-cxx" else None)
    assert cpu.cxx_compiler() == "my-cxx"
    monkeypatch.setattr(cpu.shutil, "which", lambda name: None)
    assert cpu.cxx_compiler() is None


def test_dense_attention_only_compiled_and_short():
    adapter = hardware.get_adapter("cpu")
    assert adapter.attention_kernel(True, cpu.DENSE_ATTENTION_MAX_SEQ) == "naive"
    assert adapter.attention_kernel(True, 2 * cpu.DENSE_ATTENTION_MAX_SEQ) == "sdpa"
    assert adapter.attention_kernel(False, 64) == "sdpa"
    assert hardware.get_adapter("cuda").attention_kernel(True, 64) == "flex"
