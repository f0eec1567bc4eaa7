"""Token shards on disk: the manifest, its verification and the data version. numpy + stdlib only.

Layout (see docs/INTERFACES.md): shards/train_00000.bin ..., shards/val_00000.bin ..., raw little-endian
uint16 token ids (uint32 when vocab_size >= 65536), every document starting with BOS, and manifest.json.
The training process imports this module, so it must stay free of tokenizers, pyarrow, prefect, hydra, dvc.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from data.errors import DataCorrupt, DataError

MANIFEST_FILE = "manifest.json"
HASH_CHUNK = 1 << 22


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size < 2**16 else np.dtype("<u4")


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def compute_data_version(manifest: dict) -> str:
    """12 hex characters of sha256 over the manifest's content (everything but data_version itself)."""
    content = {key: value for key, value in manifest.items() if key != "data_version"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def _rebuild_hint(manifest: dict | None) -> str:
    name = (manifest or {}).get("dataset", "NAME")
    return f"rebuild with `autoresearch prepare dataset={name}` or `dvc repro`"


def read_manifest(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"No shard manifest at {path}; {_rebuild_hint(None)}.") from None
    except ValueError:
        raise DataCorrupt(f"The shard manifest {path} is not valid JSON; {_rebuild_hint(None)}.") from None
    if manifest.get("data_version") != compute_data_version(manifest):
        raise DataCorrupt(f"The shard manifest {path} was edited after it was written; {_rebuild_hint(manifest)}.")
    return manifest


def shard_paths(shard_dir: str | Path, split: str, manifest: dict | None = None) -> list[tuple[Path, dict]]:
    """(path, manifest entry) of every shard of a split ("train" or "val"), in order."""
    manifest = manifest or read_manifest(shard_dir)
    return [(Path(shard_dir) / entry["file"], entry) for entry in manifest["shards"] if entry["split"] == split]


def open_shard(path: Path, entry: dict, manifest: dict) -> np.ndarray:
    """Memory-map one shard after a cheap size check (a truncated file must not be read as data)."""
    dtype = np.dtype(manifest["dtype"])
    expected = entry["tokens"] * dtype.itemsize
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"Shard {path} is missing; {_rebuild_hint(manifest)}.") from None
    if size != expected:
        raise DataCorrupt(f"Shard {path} has {size} bytes instead of {expected} (truncated or damaged); {_rebuild_hint(manifest)}.")
    return np.memmap(path, dtype=dtype, mode="r")


def verify_shards(shard_dir: str | Path, tokenizer_dir: str | Path | None = None) -> dict:
    """Check every shard's size and sha256 and the tokenizer's hash against the manifest; return the manifest.

    tokenizer_dir defaults to the sibling folder `tokenizer` (datasets/NAME/tokenizer). Raises DataError
    (one sentence, naming the file and how to rebuild); never deletes anything.
    """
    shard_dir = Path(shard_dir)
    manifest = read_manifest(shard_dir)
    tokenizer_file = Path(tokenizer_dir or shard_dir.parent / "tokenizer") / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise DataError(f"The tokenizer {tokenizer_file} is missing; {_rebuild_hint(manifest)}.")
    if sha256_path(tokenizer_file) != manifest["tokenizer_sha256"]:
        raise DataCorrupt(
            f"The tokenizer {tokenizer_file} is not the one the shards in {shard_dir} were encoded with; {_rebuild_hint(manifest)}."
        )
    for entry in manifest["shards"]:
        path = shard_dir / entry["file"]
        open_shard(path, entry, manifest)  # existence and size first: cheap and names the usual failure
        if sha256_path(path) != entry["sha256"]:
            raise DataCorrupt(f"Shard {path} does not match its sha256 in the manifest (corrupted); {_rebuild_hint(manifest)}.")
    return manifest


def data_version(shard_dir: str | Path) -> str:
    """The short hash that names this exact data (recorded in every result row)."""
    return read_manifest(shard_dir)["data_version"]
