"""Where an experiment's data lives, from the `data` section of config.json."""
from __future__ import annotations

import json
from pathlib import Path


def shard_dir(cfg: dict) -> Path:
    return Path(cfg["data"]["shard_dir"])


def tokenizer_dir(cfg: dict) -> Path:
    return Path(cfg["data"]["tokenizer_dir"])


def vocab_size(cfg: dict) -> int:
    """The vocabulary the shards were built with (from the manifest, the one source of truth)."""
    manifest = json.loads((shard_dir(cfg) / "manifest.json").read_text())
    return int(manifest["vocab_size"])
