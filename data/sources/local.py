"""A folder of your own text: .txt, .jsonl (a text field) and .parquet (a text column) files, recursively."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from data.errors import DataError
from data.text import decode_utf8, paragraph_groups

SUFFIXES = (".txt", ".jsonl", ".parquet")
ENV_OVERRIDE = "AUTORESEARCH_LOCAL_DIR"
REQUIRED = ("path",)
PIPELINE, FOREACH = "data/pipelines/local/dvc.yaml", False


def local_folder(spec: dict, root: str | Path = ".") -> Path:
    folder = Path(os.environ.get(ENV_OVERRIDE) or spec["path"])
    return folder if folder.is_absolute() else Path(root) / folder


def local_files(spec: dict, root: str | Path = ".") -> list[Path]:
    """The usable files, sorted (so builds are reproducible); a clear DataError when there are none."""
    folder = local_folder(spec, root)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES) if folder.is_dir() else []
    if not files:
        state = "is empty" if folder.is_dir() else "does not exist"
        raise DataError(
            f"The local dataset folder {folder} {state}; put .txt, .jsonl or .parquet files there "
            f"(or point {ENV_OVERRIDE} at a folder that has them)."
        )
    return files


def check_ready(spec: dict, root: str | Path = ".") -> None:
    """An empty or missing folder: say so now, not through DVC's output."""
    local_files(spec, root)


def input_files(spec: dict, root: str | Path = ".") -> list[tuple[str, Path]]:
    folder = local_folder(spec, root)
    return [(str(path.relative_to(folder)), path) for path in local_files(spec, root)]


def iter_documents(spec: dict, root: str | Path = ".", base_url: str | None = None) -> Iterator[tuple[str, None, int]]:
    column = spec.get("text_column", "text")
    max_chars = int(spec.get("txt_document_chars", 8000))
    for path in local_files(spec, root):
        suffix = path.suffix.lower()
        if suffix == ".txt":
            text, invalid = decode_utf8(path.read_bytes())
            for number, group in enumerate(paragraph_groups(text, max_chars)):
                # The file's invalid-sequence count rides on its first document, so it is counted once.
                yield group, None, invalid if number == 0 else 0
        elif suffix == ".jsonl":
            yield from ((text, None, invalid) for text, invalid in iter_jsonl(path, column))
        else:
            yield from ((text, None, invalid) for text, invalid in iter_parquet(path, column))


def iter_jsonl(path: Path, column: str) -> Iterator[tuple[str, int]]:
    """(text, invalid UTF-8 sequences replaced) for each non-empty line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            line, invalid = decode_utf8(raw)
            try:
                text = json.loads(line)[column]
            except (ValueError, KeyError, TypeError):
                raise DataError(f"Line {number} of {path} is not a JSON object with a '{column}' field; fix or remove it.") from None
            if isinstance(text, str) and text:
                yield text, invalid


def iter_parquet(path: Path, column: str) -> Iterator[tuple[str, int]]:
    """(text, invalid UTF-8 sequences replaced) for each non-empty row of the text column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path} is not a readable parquet file ({error}); delete it so it is fetched or rebuilt again.") from None
    if column not in parquet.schema_arrow.names:
        raise DataError(f"{path} has no '{column}' column (it has: {', '.join(parquet.schema_arrow.names)}); set text_column in the dataset yaml.")
    for batch in parquet.iter_batches(batch_size=4096, columns=[column]):
        values = batch.column(0)
        # Read as bytes: a string column may still hold invalid UTF-8, which decode_utf8 counts.
        if pa.types.is_large_string(values.type):
            values = values.cast(pa.large_binary())
        elif pa.types.is_string(values.type):
            values = values.cast(pa.binary())
        for raw in values.to_pylist():
            if raw:
                yield decode_utf8(raw)
