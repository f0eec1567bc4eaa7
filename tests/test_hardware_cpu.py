"""The CPU adapter: bf16 exactly where the CPU multiplies it natively, read from its feature flags."""

import pytest
import torch

import hardware
from hardware import cpu

XEON_SPR = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_ZEN2 = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: avx512_bf16\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"
# AVX-512 without its bf16 extension (Skylake-X, Ice Lake): bf16 is emulated there, several times slower than fp32.
SKYLAKE_X = ("processor\t: 0\nmodel name\t: Intel Core i9-7900X\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512cd "
             "avx512bw avx512vl avx512_vnni avx512_vbmi2 avx512_bitalg\n")
# AVX-512 with bf16 but no AMX (Cooper Lake; AMD Zen 4 lists the same flag).
COOPER_LAKE = "processor\t: 0\nflags\t\t: fpu avx512f avx512bw avx512_vnni avx512_bf16\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid\n"


@pytest.mark.parametrize("text,native", [(XEON_SPR, True), (EPYC_ZEN2, False), (GRAVITON3, True), ("", False),
                                         (SKYLAKE_X, False), (COOPER_LAKE, True), (GRAVITON2, False)])
def test_native_bf16_is_read_from_the_first_processors_flags(text, native):
    assert cpu.lists_native_bf16(text) is native


@pytest.mark.parametrize("native,dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_autocast_and_orthogonalisation_follow_the_flags(monkeypatch, native, dtype):
    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    adapter = hardware.get_adapter("cpu")
    assert adapter.autocast_dtype == dtype and adapter.ortho_dtype == dtype
    assert adapter.attention_impl == "sdpa" and adapter.device.type == "cpu"


def test_native_bf16_reads_the_cpuinfo_file_and_is_false_where_there_is_none(tmp_path, monkeypatch):
    """The answer for a known file is written out (not recomputed from the flag list the code uses)."""
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(cpu, "CPUINFO", str(path))
    for text, native in ((XEON_SPR, True), (SKYLAKE_X, False), (COOPER_LAKE, True)):
        path.write_text(text)
        cpu.native_bf16.cache_clear()
        assert cpu.native_bf16() is native
    path.unlink()
    cpu.native_bf16.cache_clear()
    assert cpu.native_bf16() is False  # macOS: no /proc/cpuinfo
    cpu.native_bf16.cache_clear()  # the next caller reads the real file again


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


def test_the_flags_are_read_whole_from_the_first_flags_line():
    assert cpu.cpu_flags(SKYLAKE_X) == {"fpu", "sse2", "avx2", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
                                        "avx512_vnni", "avx512_vbmi2", "avx512_bitalg"}
    assert cpu.cpu_flags(GRAVITON3) == {"fp", "asimd", "sve", "bf16", "i8mm"}
    # A value holding a colon is kept whole; the first processor's line wins over a later one.
    assert cpu.cpu_flags("flags\t: a:b c\nflags\t: d\n") == {"a:b", "c"}
    assert cpu.cpu_flags("model name\t: flags\n") == set()


def test_compile_by_default_for_a_flop_budget_too(monkeypatch):
    adapter = hardware.get_adapter("cpu")
    monkeypatch.setattr(cpu, "cxx_compiler", lambda: "g++")
    assert [adapter.compiles_by_default(kind) for kind in ("time", "flops", "steps")] == [True, True, False]


@pytest.mark.parametrize("found,expected", [({"g++", "clang++", "c++"}, "g++"), ({"clang++", "c++"}, "clang++"),
                                            ({"c++"}, "c++")])
def test_cxx_compiler_without_cxx_takes_the_first_on_path(monkeypatch, found, expected):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(cpu.shutil, "which", lambda name: f"/usr/bin/{name}" if name in found else None)
    assert cpu.cxx_compiler() == expected


def test_the_device_name_is_the_cpuinfo_model_name(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+ : rev 8\nflags\t: fpu\n")
    monkeypatch.setattr(cpu, "CPUINFO", str(path))
    adapter = hardware.get_adapter("cpu")
    assert adapter.device_name() == "Intel(R) Xeon(R) Platinum 8480+ : rev 8"
    path.write_text("processor\t: 0\n")
    monkeypatch.setattr(cpu.platform, "processor", lambda: "")
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert adapter.device_name() == "aarch64"
    path.unlink()
    monkeypatch.setattr(cpu.platform, "machine", lambda: "")
    assert adapter.device_name() == "cpu" and adapter.peak_flops() is None


def test_peak_memory_is_the_resident_set_in_bytes(monkeypatch):
    import types

    # This process's peak (RUSAGE_SELF), not its children's: a fake that answers only for it.
    real_self = cpu.resource.RUSAGE_SELF
    monkeypatch.setattr(cpu.resource, "getrusage",
                        lambda who: types.SimpleNamespace(ru_maxrss=1000 if who == real_self else -1))
    monkeypatch.setattr(cpu.sys, "platform", "linux")
    assert hardware.get_adapter("cpu").peak_memory_bytes() == 1024000  # Linux reports kilobytes
    monkeypatch.setattr(cpu.sys, "platform", "darwin")
    assert hardware.get_adapter("cpu").peak_memory_bytes() == 1000  # macOS bytes
