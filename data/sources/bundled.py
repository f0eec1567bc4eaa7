"""The shipped corpus: xz-compressed JSON Lines files under data/bundled/ (see PROVENANCE.md there)."""
from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Iterator

from data.errors import DataError

REQUIRED = ("files",)
# The root pipeline: what a plain `dvc repro` builds, offline.
PIPELINE, FOREACH = "dvc.yaml", False


def check_ready(spec: dict, root: str | Path = ".") -> None:
    """Nothing to say before DVC: the files ship with the repository (iter_documents names a missing one)."""


def input_files(spec: dict, root: str | Path = ".") -> list[tuple[str, Path]]:
    return [(name, Path(root) / name) for name in spec["files"]]


def iter_documents(spec: dict, root: str | Path = ".", base_url: str | None = None) -> Iterator[tuple[str, None, int]]:
    for name in spec["files"]:
        path = Path(root) / name
        if not path.is_file():
            raise DataError(f"The bundled corpus file {path} is missing; restore it from the repository (git checkout -- {name}).")
        with lzma.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)["text"], None, 0
