"""config.json, the one file between the orchestrator and the training process, and the folder around it.

The orchestrator composes Hydra once and writes plain JSON (`training_config`, `write_training_config`); the
training and evaluation processes only read it (`load_run_config`). Both sides live here, with the names of
the experiment folder's files (`ExperimentDir`), so they cannot disagree on either.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_json
from common.paths import PROJECT_ROOT, FolderEntry

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
EVAL_FILE = "eval.json"
CHECKPOINT_FILE = "checkpoint.npz"
TRAIN_LOG = "train.log"
EVAL_LOG = "eval.log"
# The code whose change can change a result: recorded in every row and part of every cache key.
RESULT_CODE_DIRS = ("training", "models", "optim", "hardware", "data")


@dataclass(frozen=True)
class ExperimentDir:
    """runs/<tag>/exp/<N>/ (or a finalize arm's seed folder): the paths of its files, no I/O."""

    root: Path

    config = FolderEntry(CONFIG_FILE)
    metrics = FolderEntry(METRICS_FILE)  # written by the training process always, a failure's reason included
    evaluation = FolderEntry(EVAL_FILE)
    checkpoint = FolderEntry(CHECKPOINT_FILE)
    train_log = FolderEntry(TRAIN_LOG)
    eval_log = FolderEntry(EVAL_LOG)
    proposal = FolderEntry("proposal.json")  # the proposer's answer, written once before anything else
    device_record = FolderEntry("device.jsonl")  # one line per phase: which device it held, when (tasks/gpu_slots.py)
    pool_heartbeat = FolderEntry("pool-heartbeat.json")  # rewritten while a pool run lives (flows/pool_watch.py)
    test_split = FolderEntry("test")  # the same checkpoint scored on the held-out test split (`autoresearch finalize`)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))  # accept a str or any os.PathLike


class ConfigError(ValueError):
    """The experiment config cannot be trained (missing key, impossible batch split...)."""


def load_run_config(exp_dir: str | os.PathLike) -> dict[str, Any]:
    path = ExperimentDir(exp_dir).config
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


def shard_dir(cfg: dict) -> Path:
    return Path(cfg["data"]["shard_dir"])


def tokenizer_dir(cfg: dict) -> Path:
    return Path(cfg["data"]["tokenizer_dir"])


def vocab_size(cfg: dict) -> int:
    """The vocabulary the shards were built with (from the manifest, the one source of truth)."""
    manifest = json.loads((shard_dir(cfg) / "manifest.json").read_text())
    return int(manifest["vocab_size"])


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


def write_training_config(directory: str | os.PathLike, run_cfg: dict) -> Path:
    """Write config.json unless the same config is already there (a resumed experiment keeps its files)."""
    path = ExperimentDir(directory).config
    if path.is_file():
        try:
            if json.loads(path.read_text()) == json.loads(json.dumps(run_cfg, default=str)):
                return path
        except json.JSONDecodeError:
            pass
    atomic_write_json(path, run_cfg)
    return path


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
