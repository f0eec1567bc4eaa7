"""Backend-neutral checkpoints: named numpy arrays plus the model config, in one .npz written atomically.

numpy is the format both torch and MLX read and write, so a model trained by either backend can be
evaluated by the other, and the evaluator needs no knowledge of how it was trained.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from data.atomic import atomic_write_bytes
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
