"""Room on the disk for the next training, checked by the orchestrator before it starts one.

A training writes its checkpoint (every parameter in fp32, training/checkpoint.py's .npz) and a few small files
(metrics, logs, eval.json). Starting one that cannot write its checkpoint spends the whole budget for nothing,
so the run stops first, in one sentence (common.atomic.DiskFull), and the same command resumes it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from common.atomic import DiskFull

# Besides the checkpoint: metrics.json, train.log, eval.json, eval.log (a few hundred kB at most), and the ledger,
# run repository and Prefect database rows the experiment adds after it.
MARGIN_BYTES = 16 * 2**20
NPZ_OVERHEAD_BYTES = 64 * 2**10  # zip headers and the model config, per archive: a bound, not a measurement


def parameter_count(run_cfg: dict) -> int | None:
    """The block's parameter count, from the model built on torch's meta device (no memory, no data); None where
    torch or the block cannot say (a block the trainer will refuse anyway)."""
    try:
        import torch

        from models.gpt import GPT
        from models.hparams import GPTConfig
        from training.run_config import vocab_size

        config = GPTConfig.from_hparams(run_cfg["hparams"]["model"], vocab_size(run_cfg), int(run_cfg["train"]["seq_len"]))
        with torch.device("meta"):
            return GPT(config).num_params()
    except Exception:  # noqa: BLE001 - the estimate is advice; the training reports a bad block itself
        return None


def checkpoint_bytes(num_params: int) -> int:
    """checkpoint.npz of a model of `num_params` parameters: 4 bytes each (fp32, whatever the training dtype)."""
    return 4 * int(num_params) + NPZ_OVERHEAD_BYTES


def needed_bytes(run_cfg: dict) -> int | None:
    params = parameter_count(run_cfg)
    return None if params is None else checkpoint_bytes(params) + MARGIN_BYTES


def megabytes(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


def ensure_room(exp_dir: str | os.PathLike, run_cfg: dict) -> int | None:
    """Raise DiskFull when the disk holding `exp_dir` has less free space than the next training writes; returns
    the bytes it needs (None when the block's size is unknown: then nothing is checked)."""
    need = needed_bytes(run_cfg)
    if need is None:
        return None
    folder = Path(exp_dir)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DiskFull(folder, f"Not enough free space for the next training in {folder}: it writes about "
                               f"{megabytes(need)} (its checkpoint in fp32 and logs) and {megabytes(free)} are free; free "
                               "some space there and run the same command again; everything recorded so far is kept.")
    return need
