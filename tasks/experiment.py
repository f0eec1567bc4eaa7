"""An experiment's folder: runs/<tag>/exp/<N>/ with config.json, logs, metrics, eval and checkpoint."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data.atomic import atomic_write_json
from training.run_config import CONFIG_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The code whose change can change a result: recorded in every row and part of every cache key.
RESULT_CODE_DIRS = ("training", "models", "optim", "hardware", "data")


def exp_dir(run_dir: Path, exp: int) -> Path:
    return Path(run_dir) / "exp" / str(exp)


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> str:
    """A hash of the training code's source files: changes when anything that shapes a result changes."""
    digest = hashlib.sha256()
    for folder in RESULT_CODE_DIRS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def training_config(cfg: dict, hparams: dict, seed: int, data: dict, fault: dict | None = None) -> dict:
    """The resolved JSON the training process reads: it needs no Hydra, only these plain values."""
    block = json.loads(json.dumps(hparams))
    block["seed"] = int(seed)
    run_cfg = {"hparams": block, "train": cfg["train"], "budget": cfg["budget"], "backend": cfg.get("backend", "auto"),
               "data": {"shard_dir": str(data["shard_dir"]), "tokenizer_dir": str(data["tokenizer_dir"]),
                        "data_version": data["data_version"]}}
    if fault:
        run_cfg["fault"] = fault
    return run_cfg


def write_training_config(directory: Path, run_cfg: dict) -> Path:
    """Write config.json unless the same config is already there (a resumed experiment keeps its files)."""
    path = Path(directory) / CONFIG_FILE
    if path.is_file():
        try:
            if json.loads(path.read_text()) == json.loads(json.dumps(run_cfg, default=str)):
                return path
        except json.JSONDecodeError:
            pass
    atomic_write_json(path, run_cfg)
    return path
