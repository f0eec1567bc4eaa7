"""`python -m training.entry EXP_DIR`: train one experiment from EXP_DIR/config.json.

Writes EXP_DIR/metrics.json (always, atomically) and EXP_DIR/checkpoint.npz (on success). Exits 0 on
success; on a failure (NaN or exploded loss, out of memory, invalid config, missing data, unavailable
backend) it writes the reason into metrics.json and exits 1, so the orchestrator records a `crash` with it.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from data.atomic import atomic_write_json
from models.hparams import check_block
from training.lifeline import die_with_parent
from training.outcome import TrainingFailure
from training.run_config import METRICS_FILE, ConfigError, load_run_config

# The reference trainer's allocator setting: CUDA memory segments that grow instead of many fixed blocks, so a
# run near the memory limit fragments less. torch reads it when the allocator starts, i.e. after this process
# starts and before its first CUDA tensor; elsewhere it is ignored. A value the user set is kept.
ALLOCATOR_SETTINGS = ("PYTORCH_ALLOC_CONF", "expandable_segments:True")


def run(exp_dir: Path) -> dict:
    cfg = load_run_config(exp_dir)
    check_block(cfg["hparams"], int(cfg["train"]["seq_len"]))  # the rules proposals were validated against
    from hardware import detect  # after the config checks, so a bad config fails before any hardware probing

    backend = detect(cfg.get("backend", "auto"))
    if backend == "mlx":
        from training.loop_mlx import train_mlx

        return train_mlx(cfg, exp_dir)
    from training.loop_torch import train_torch

    return train_torch(cfg, exp_dir, backend)


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, one-sentence reason) for a failure, without a traceback."""
    from data.errors import DataError
    from hardware import BackendUnavailable

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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m training.entry EXP_DIR", file=sys.stderr)
        return 2
    exp_dir = Path(argv[0])
    os.environ.setdefault(*ALLOCATOR_SETTINGS)
    die_with_parent()
    started = time.time()
    try:
        metrics = run(exp_dir)
    except KeyboardInterrupt:
        atomic_write_json(exp_dir / METRICS_FILE, {"status": "failed", "kind": "interrupted",
                                                    "reason": "training was interrupted", "total_seconds": time.time() - started})
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded reason, never a lost experiment
        kind, reason = classify(exc)
        if kind == "error":  # unexpected: the traceback is what a developer needs; expected failures are one line
            traceback.print_exc()
        atomic_write_json(exp_dir / METRICS_FILE, {"status": "failed", "kind": kind, "reason": reason,
                                                    "total_seconds": time.time() - started})
        print(f"training failed: {reason}", file=sys.stderr)
        return 1
    atomic_write_json(exp_dir / METRICS_FILE, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
