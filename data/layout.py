"""Where a dataset's generated files live: datasets/NAME/{corpus,tokenizer,shards} under the project root.

One place for these paths, so the stages, the DVC pipelines, prepare and the training config agree. The project
root itself is common.paths'.
"""
from __future__ import annotations

from pathlib import Path

DATA_DIR = "datasets"


def dataset_dir(name: str, root: str | Path = ".") -> Path:
    return Path(root) / DATA_DIR / name


def corpus_dir(name: str, root: str | Path = ".") -> Path:
    return dataset_dir(name, root) / "corpus"


def tokenizer_dir(name: str, root: str | Path = ".") -> Path:
    return dataset_dir(name, root) / "tokenizer"


def shard_dir(name: str, root: str | Path = ".") -> Path:
    return dataset_dir(name, root) / "shards"


def download_dir(name: str, root: str | Path = ".") -> Path:
    # Raw downloads are kept outside the DVC outputs so that a partial file survives a failed stage
    # and the next attempt resumes it.
    return dataset_dir(name, root) / "download"


def dvc_target(spec: dict, stage: str = "shards") -> str:
    """The `dvc repro` target that builds the dataset of this spec up to STAGE: its source kind's pipeline file
    (one per kind, data/sources/), with @NAME where one template there serves several datasets (DVC `foreach`)."""
    from data.sources import source_module  # the sources import this module: a late import, no cycle

    source = source_module(spec["source"])
    return f"{source.PIPELINE}:{stage}" + (f"@{spec['name']}" if source.FOREACH else "")
