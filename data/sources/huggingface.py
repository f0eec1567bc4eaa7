"""Hugging Face parquet datasets: download the configured shards, then read their text column."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

from data.download import download_file, hf_file_url, require_resolvable
from data.layout import corpus_dir, download_dir

REQUIRED = ("repo", "train_files", "num_train_shards")
# One template over several datasets (DVC `foreach`): its stages are named stage@NAME.
PIPELINE, FOREACH = "data/pipelines/huggingface/dvc.yaml", True


def check_ready(spec: dict, root: str | Path = ".") -> None:
    """Offline, said before DVC (and before a run folder is made): when a download is sure to come (no corpus
    built yet, a file not downloaded), the host must resolve. A built corpus is left to DVC, which may find it
    up to date and download nothing."""
    if (corpus_dir(spec["name"], root) / "meta.json").is_file():
        return
    missing = [name for name, path in input_files(spec, root) if not path.is_file()]
    if missing:
        require_resolvable(hf_file_url(spec["repo"], missing[0], spec.get("revision", "main")))


def input_files(spec: dict, root: str | Path = ".") -> list[tuple[str, Path]]:
    return [(name, download_dir(spec["name"], root) / name) for name, _ in shard_files(spec)]


def shard_files(spec: dict) -> list[tuple[str, str | None]]:
    """(file in the repo, split) for the configured training shards and the pinned validation file."""
    val_file = spec.get("val_file")
    files = []
    for index in range(int(spec["num_train_shards"])):
        name = spec["train_files"].format(index=index)
        if name != val_file:  # the pinned validation shard never trains, whatever num_train_shards says
            files.append((name, "train" if val_file else None))
    if val_file:
        files.append((val_file, "val"))
    return files


def fetch(spec: dict, root: str | Path = ".", base_url: str | None = None, retries: int = 5,
          backoff_seconds: float = 1.0) -> list[tuple[Path, str | None]]:
    """Download every configured file (skipping complete ones) and return (local path, split)."""
    local = []
    files = shard_files(spec)
    for number, (name, split) in enumerate(files, 1):
        url = hf_file_url(spec["repo"], name, spec.get("revision", "main"), base_url)
        dest = download_dir(spec["name"], root) / name
        print(f"[{number}/{len(files)}] {name}{' (cached)' if dest.exists() else ''}", file=sys.stderr, flush=True)
        local.append((download_file(url, dest, retries=retries, backoff_seconds=backoff_seconds), split))
    return local


def iter_documents(spec: dict, root: str | Path = ".", base_url: str | None = None) -> Iterator[tuple[str, str | None, int]]:
    from data.sources.local import iter_parquet  # the same reader as for local parquet files

    # Retry settings may be tuned per dataset; they do not change the data, so DVC does not track them.
    retries = int(spec.get("download_retries", 5))
    backoff = float(spec.get("download_backoff_seconds", 1.0))
    for path, split in fetch(spec, root, base_url, retries=retries, backoff_seconds=backoff):
        for text, invalid in iter_parquet(path, spec.get("text_column", "text")):
            yield text, split, invalid
