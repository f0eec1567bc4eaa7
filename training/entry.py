"""`python -m training.entry EXP_DIR`: train one experiment from EXP_DIR/config.json.

Writes EXP_DIR/metrics.json (always, atomically) and EXP_DIR/checkpoint.npz (on success). Exits 0 on
success; on a failure (NaN or exploded loss, out of memory, invalid config, missing data, unavailable
backend) it writes the reason into metrics.json and exits 1, so the orchestrator records a `crash` with it. A
full disk is not the block's fault: it prints `disk full: <sentence>` and exits DISK_FULL_EXIT without a
metrics.json, and the orchestrator stops the run (the same command trains this experiment again later).

Both child processes (this one and `python -m training.evaluate`) pick their port the same way
(`port_for`): the backend adapter names its framework, and the port of that framework trains or evaluates.
Nothing here branches on a backend's name.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from common.atomic import DISK_FULL_EXIT, DiskFull, atomic_write_json, disk_full_folder, is_disk_full
from common.registry import Registry
from models.hparams import check_block
from training.run_config import ConfigError, ExperimentDir, load_run_config

# The reference trainer's allocator setting: CUDA memory segments that grow instead of many fixed blocks, so a
# run near the memory limit fragments less. torch reads it when the allocator starts, i.e. after this process
# starts and before its first CUDA tensor; elsewhere it is ignored. A value the user set is kept.
ALLOCATOR_SETTINGS = ("PYTORCH_ALLOC_CONF", "expandable_segments:True")
# Each port offers train(cfg, exp_dir, adapter) and evaluate(cfg, exp_dir, adapter); imported only when chosen,
# so an MLX-only machine never imports torch's port and a CUDA machine never imports mlx.
PORTS = Registry({"torch": "training.torch_port", "mlx": "training.mlx_port"})
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Tie this process's life to the orchestrator that started it.

    If the orchestrator is killed outright (kill -9, the OOM killer), a training left running would hold the
    GPU and could still write a result the resumed run then trusts. On Linux the kernel sends us SIGKILL when
    our parent dies (PR_SET_PDEATHSIG); elsewhere this is a no-op and the orchestrator's own process-group kill
    on a clean stop is what ends us.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def port_for(cfg: dict) -> tuple[ModuleType, object]:
    """(the port module, the backend adapter) for config.json's `backend` on this machine."""
    from hardware import detect, get_adapter  # after the config checks, so a bad config fails before any probing

    adapter = get_adapter(detect(cfg.get("backend", "auto")))
    return PORTS.load(adapter.framework), adapter


def run(exp_dir: Path) -> dict:
    cfg = load_run_config(exp_dir)
    check_block(cfg["hparams"], int(cfg["train"]["seq_len"]))  # the rules proposals were validated against
    port, adapter = port_for(cfg)
    from hardware.energy import measure_energy

    # The device's own energy meter, read here in the training process: set-up, compile and training (not the
    # evaluation); None where the hardware reports none.
    with measure_energy(adapter) as energy:
        metrics = port.train(cfg, exp_dir, adapter)
    return {**metrics, "energy_kwh": energy.kwh}


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, one-sentence reason) for a failure, without a traceback."""
    from data.errors import DataError
    from hardware import BackendUnavailable
    from training.loop import TrainingFailure  # imports torch (through optim): only after ALLOCATOR_SETTINGS is set

    if isinstance(exc, TrainingFailure):
        return exc.kind, exc.reason
    if isinstance(exc, (ConfigError, ValueError)):
        return "config", str(exc)
    if isinstance(exc, DataError):
        return "data", str(exc)
    if isinstance(exc, BackendUnavailable):
        return "backend", str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "oom", f"out of memory ({type(exc).__name__})"
    return "error", f"{type(exc).__name__}: {exc}"


def exp_dir_argument(argv: list[str] | None, module: str) -> Path | None:
    """The one EXP_DIR argument of a child process (None after printing the usage)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} EXP_DIR", file=sys.stderr)
        return None
    return Path(argv[0])


def report_disk_full(exc: BaseException, exp_dir: Path) -> int:
    """The one line the orchestrator reads back (training.launch.ProcessResult.raise_if_disk_full), and the exit
    code that says it; no result file is written, so nothing records the block as a crash."""
    sentence = str(exc) if isinstance(exc, DiskFull) else str(DiskFull(disk_full_folder(exc) or exp_dir))
    print(f"disk full: {sentence}", file=sys.stderr, flush=True)
    return DISK_FULL_EXIT


def main(argv: list[str] | None = None) -> int:
    exp_dir = exp_dir_argument(argv, "training.entry")
    if exp_dir is None:
        return 2
    metrics_path = ExperimentDir(exp_dir).metrics
    os.environ.setdefault(*ALLOCATOR_SETTINGS)
    die_with_parent()
    started = time.time()
    try:
        try:
            metrics = run(exp_dir)
        except KeyboardInterrupt:
            atomic_write_json(metrics_path, {"status": "failed", "kind": "interrupted",
                                             "reason": "training was interrupted", "total_seconds": time.time() - started})
            return 130
        except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded reason, never a lost experiment
            if is_disk_full(exc):
                return report_disk_full(exc, exp_dir)
            kind, reason = classify(exc)
            if kind == "error":  # unexpected: the traceback is what a developer needs; expected failures are one line
                traceback.print_exc()
            atomic_write_json(metrics_path, {"status": "failed", "kind": kind, "reason": reason,
                                             "total_seconds": time.time() - started})
            print(f"training failed: {reason}", file=sys.stderr)
            return 1
        atomic_write_json(metrics_path, metrics)
    except DiskFull as exc:  # the result itself could not be written: the checkpoint alone is no finished training
        return report_disk_full(exc, exp_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
