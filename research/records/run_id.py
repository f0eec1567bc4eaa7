"""runs/<tag>/run_id: a random id per run folder, part of every cache key, so a deleted and re-created run starts
clean instead of re-using the old one's cached task results."""
from __future__ import annotations

import uuid
from pathlib import Path

from common.atomic import atomic_write_text
from research.records.layout import RunLayout


def ensure_run_id(run_dir: Path) -> str:
    path = RunLayout(run_dir).run_id
    if not path.is_file():
        atomic_write_text(path, uuid.uuid4().hex[:12] + "\n")
    return path.read_text().strip()
