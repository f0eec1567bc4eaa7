"""Backend-neutral checkpoints: named numpy arrays plus the model config, in one .npz written atomically.

numpy is the format both torch and MLX read and write, so a model trained by either backend can be
evaluated by the other, and the evaluator needs no knowledge of how it was trained.

A checkpoint lives only as long as something needs it: `release_after_evaluation` deletes it once its score is
recorded, unless config.json's `train.keep_checkpoints` is true (at ~200 MB per training at the datacenter
default, a night of paired runs would otherwise leave tens of GB behind).
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes
from training.run_config import ExperimentDir

_CONFIG_KEY = "__model_config__"


def save_checkpoint(exp_dir: str | Path, arrays: dict[str, np.ndarray], model_config: dict) -> Path:
    if _CONFIG_KEY in arrays:
        raise ValueError(f"parameter name {_CONFIG_KEY!r} is reserved")
    buffer = io.BytesIO()
    config_blob = np.frombuffer(json.dumps(model_config, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buffer, **arrays, **{_CONFIG_KEY: config_blob})
    path = ExperimentDir(exp_dir).checkpoint
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(exp_dir: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    path = ExperimentDir(exp_dir).checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the training of this experiment did not finish.")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != _CONFIG_KEY}
        model_config = json.loads(archive[_CONFIG_KEY].tobytes().decode())
    return arrays, model_config


def keeps_checkpoint(exp_dir: str | os.PathLike) -> bool:
    """config.json's `train.keep_checkpoints` (absent in configs written before it existed: not kept)."""
    try:
        train = json.loads(ExperimentDir(exp_dir).config.read_text()).get("train") or {}
    except (OSError, json.JSONDecodeError):
        return True  # cannot tell: keeping costs disk, deleting could cost a training
    return bool(train.get("keep_checkpoints", False))


def release_after_evaluation(exp_dir: str | os.PathLike) -> bool:
    """Delete the checkpoint once eval.json records a score, unless the folder keeps it; True if deleted."""
    files = ExperimentDir(exp_dir)
    try:
        scored = json.loads(files.evaluation.read_text()).get("status") == "ok"
    except (OSError, json.JSONDecodeError):
        scored = False
    if not scored or keeps_checkpoint(exp_dir) or not files.checkpoint.is_file():
        return False
    files.checkpoint.unlink(missing_ok=True)
    return True
