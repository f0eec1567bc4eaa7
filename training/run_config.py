"""The resolved experiment config the orchestrator writes to EXP_DIR/config.json, and the files around it.

The orchestrator (tasks/train.py) composes Hydra once and writes plain JSON; the training process only reads
it. Keeping the file names here means both sides agree on them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
EVAL_FILE = "eval.json"
CHECKPOINT_FILE = "checkpoint.npz"
TRAIN_LOG = "train.log"
EVAL_LOG = "eval.log"


class ConfigError(ValueError):
    """The experiment config cannot be trained (missing key, impossible batch split...)."""


def load_run_config(exp_dir: str | Path) -> dict[str, Any]:
    path = Path(exp_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; the orchestrator writes it before starting training.")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
    for section in ("hparams", "train", "budget", "data"):
        if section not in cfg:
            raise ConfigError(f"{path} has no '{section}' section; re-create the experiment.")
    return cfg

