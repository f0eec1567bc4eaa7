"""runs/<tag>/finalize.tsv: one row per (arm, seed) training of `autoresearch finalize`, the source of truth of
a finalize and what makes it resumable: a killed finalize trains only the (arm, seed) pairs without a row.

Written like results.tsv: the whole file atomically (common.atomic) after each training, so a reader sees the
old file or the new one; a line cut off by hand editing is dropped on reading. Fields never hold tabs or
newlines (the error text is flattened), numbers are written with repr() so they read back bit-identical.
"""
from __future__ import annotations

import math
from pathlib import Path

from common.atomic import atomic_write_text

COLUMNS = ("arm", "seed", "val_bpb", "test_bpb", "steps", "error", "config_hash")  # test_bpb: held-out split
HEADER = "\t".join(COLUMNS)


class FinalizeTableError(ValueError):
    """finalize.tsv cannot be read; the message says what to do."""


def _field(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return " ".join(str(value).split())  # no tab or newline can reach the file


def _parse(column: str, text: str):
    if text == "":
        return None
    if column in ("seed", "steps"):
        return int(text)
    if column in ("val_bpb", "test_bpb"):
        return float(text)
    return text


class FinalizeTable:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").split("\n")
        if lines[0] != HEADER:
            raise FinalizeTableError(f"{self.path} has a header this version does not write; move it aside and "
                                     "run finalize again.")
        rows = []
        for line in lines[1:-1]:  # the last element is "" after the final newline, or a cut-off line
            fields = line.split("\t")
            if len(fields) == len(COLUMNS):
                rows.append({c: _parse(c, f) for c, f in zip(COLUMNS, fields)})
        return rows

    def has(self, arm: str, seed: int) -> bool:
        return any(row["arm"] == arm and row["seed"] == int(seed) for row in self.rows())

    def record(self, row: dict) -> bool:
        """Add one (arm, seed) row; False and nothing written when it is already there (idempotent)."""
        rows = self.rows()
        if any(r["arm"] == row["arm"] and r["seed"] == int(row["seed"]) for r in rows):
            return False
        lines = [HEADER] + ["\t".join(_field(r.get(c)) for c in COLUMNS) for r in [*rows, row]]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        return True
