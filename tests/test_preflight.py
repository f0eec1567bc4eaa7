"""The pre-flight check (cli/preflight.py): each mistake a user can type ends in one sentence that names the value
and the override that fixes it, exit code 2, in seconds, with no run folder made; a value outside the space's
bounds is said once and trained as given."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from data.errors import DataError
from flows.compose import compose
from cli.preflight import check_before_training

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Small enough that a mistake the pre-flight let through would end in seconds, not in a 10-minute run.
TINY = ["proposer=local", "budget.kind=steps", "budget.steps=1", "research.max_experiments=1",
        "hparams.model.depth=2", "train.eval_tokens=4096", "tag=mistake"]


def run_in_process(tmp_path: Path, capsys, *overrides: str, preset: str = "cpu") -> tuple[int, str, float]:
    """`autoresearch run` through the CLI's main: (exit code, its error lines, seconds)."""
    from cli.main import main

    start = time.monotonic()
    code = main(["run", f"paths.runs_dir={tmp_path / 'runs'}", f"preset={preset}", *TINY, *overrides])
    seconds = time.monotonic() - start
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return code, "\n".join(errors), seconds


def assert_refused(tmp_path: Path, code: int, errors: str, seconds: float, *words: str) -> None:
    assert code == 2, errors
    assert len(errors.splitlines()) == 1, errors
    for word in words:
        assert word in errors, errors
    assert seconds < 10, seconds
    assert not (tmp_path / "runs").exists()  # not even the runs folder, let alone runs/<tag>


def test_a_value_not_of_the_keys_type_is_refused_by_the_real_cli(tmp_path):
    """The issue's first mistake, through the installed command: depth=abc once ran the baseline into a 'crash'."""
    runs = tmp_path / "runs"
    command = [str(PROJECT_ROOT / ".venv" / "bin" / "autoresearch"), "run", f"paths.runs_dir={runs}", "preset=cpu",
               *TINY, "hparams.model.depth=abc"]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"})
    seconds = time.monotonic() - start
    errors = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert "Traceback" not in proc.stderr
    assert_refused(tmp_path, proc.returncode, errors, seconds,
                   "hparams.model.depth='abc'", "int in [1, 32]", "hparams.model.depth=8")
    assert "crash" not in proc.stdout + proc.stderr


def test_a_non_positive_budget_is_refused(tmp_path, capsys):
    code, errors, seconds = run_in_process(tmp_path, capsys, "budget.kind=time", "budget.seconds=-5")
    # The reason is the trainer's own (Budget.from_config), whatever its words: the value typed is named.
    assert_refused(tmp_path, code, errors, seconds, "budget.seconds=-5 gives no budget")


def test_claude_without_a_key_is_refused_before_the_baselines(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, errors, seconds = run_in_process(tmp_path, capsys, "proposer=claude")
    assert_refused(tmp_path, code, errors, seconds, "proposer=claude", "ANTHROPIC_API_KEY", "proposer=local")


def test_an_offline_dataset_is_refused_on_the_first_failed_lookup(tmp_path, capsys, monkeypatch):
    """No network: the host's first DNS failure ends it (it used to retry a download for 137 s first)."""
    looked_up = []

    def no_dns(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr("common.paths.PROJECT_ROOT", tmp_path / "clone")  # no download or corpus there yet
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    code, errors, seconds = run_in_process(tmp_path, capsys, "dataset=climbmix")
    assert_refused(tmp_path, code, errors, seconds, "huggingface.co", "dataset=bundled or dataset=local")
    assert looked_up == ["huggingface.co"]


def test_a_download_ends_at_the_first_dns_failure_without_retrying(tmp_path, monkeypatch):
    """The same sentence at download time (a corpus rebuilt offline), with no retry and no backoff."""
    from data import download

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def no_sleep(seconds):
        raise AssertionError("a DNS failure was retried")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(download.time, "sleep", no_sleep)
    with pytest.raises(DataError, match=r"Could not resolve huggingface\.co .*dataset=bundled or dataset=local"):
        download.download_file("https://huggingface.co/datasets/x/y/resolve/main/a.parquet", tmp_path / "a.parquet")


def test_a_gpu_preset_on_this_cpu_is_refused(tmp_path, capsys):
    code, errors, seconds = run_in_process(tmp_path, capsys, "backend=cpu", "dataset=bundled", preset="datacenter")
    assert_refused(tmp_path, code, errors, seconds, "preset=datacenter", "preset=cpu")


def test_a_datacenter_preset_on_a_small_gpu_is_refused(monkeypatch):
    """Memory, as the hardware tiers measure it: 24 GiB affords the consumer preset, not the datacenter one."""
    import hardware
    from research.errors import ConfigurationError

    class SmallGPU:
        fixed_preset = None

        def total_memory_bytes(self):
            return 24 * 2**30

    monkeypatch.setattr(hardware, "detect", lambda requested="auto": "cuda")
    monkeypatch.setattr(hardware, "get_adapter", lambda name: SmallGPU())
    cfg = compose(["preset=datacenter", "dataset=bundled", "proposer=local"])
    with pytest.raises(ConfigurationError, match=r"preset=datacenter .* cuda with 24 GiB; run with preset=consumer"):
        check_before_training(cfg, checks=("device",))
    check_before_training(compose(["preset=consumer", "dataset=bundled", "proposer=local"]), checks=("device",))


def test_a_block_the_model_cannot_build_is_refused(tmp_path, capsys):
    """The model's own rule (models/hparams.py): 4 heads of 32 cannot be split into groups of 8."""
    code, errors, seconds = run_in_process(tmp_path, capsys, "hparams.model.aspect_ratio=64",
                                           "hparams.model.head_dim=32", "hparams.model.kv_head_ratio=8")
    assert_refused(tmp_path, code, errors, seconds, "kv_head_ratio 8", "does not divide")


def test_a_value_outside_the_bounds_is_said_once_and_kept():
    """The user's own block may leave the space (proposals may not): one warning, and the check passes."""
    said = []
    check_before_training(compose(["preset=cpu", *TINY, "hparams.model.depth=40"]), warn=said.append)
    assert len(said) == 1, said
    assert "hparams.model.depth=40" in said[0] and "[1, 32]" in said[0] and "trained as given" in said[0]


def test_a_refused_block_is_not_also_warned_about():
    """An activation the model does not know is outside the space too; the refusal says it, no warning on top."""
    from research.errors import ConfigurationError

    said = []
    with pytest.raises(ConfigurationError, match=r"activation='gelu2' is not one of relu2, gelu, swiglu"):
        check_before_training(compose(["preset=cpu", *TINY, "hparams.model.activation=gelu2"]), warn=said.append)
    assert said == []


def test_a_good_config_passes_in_silence():
    """The defaults (and a crash injected for the reliability tests, which must still train and crash) pass."""
    said = []
    check_before_training(compose(["preset=cpu", "proposer=local"]), warn=said.append)
    check_before_training(compose(["preset=cpu", *TINY, "fault={kind:'nan',step:1}"]), warn=said.append)
    assert said == []


def test_the_hybrid_without_a_key_is_said_once_and_runs_on_tpe(monkeypatch):
    said = []
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    check_before_training(compose(["preset=cpu", "proposer=hybrid"]), warn=said.append)
    assert len(said) == 1 and "TPE proposes alone" in said[0], said
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-preflight")
    said.clear()
    check_before_training(compose(["preset=cpu", "proposer=hybrid"]), warn=said.append)
    assert said == []
