"""Crash-safe file writes: a reader sees the old file or the new one, never half of either.

Write to a temporary file in the same folder, fsync it, os.replace() it over the target (atomic on POSIX),
then fsync the folder so the rename itself survives a power cut. Every record the project keeps
(manifest, metrics, ledger, heartbeat) goes through here.

A full disk is one more way a write fails: the old file stays whole, and the error becomes `DiskFull`, whose
sentence names the folder, so a run stops saying where to free space instead of recording a half-written file.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

FILE_MODE = 0o644
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How other layers say "disk full" where no errno reaches us: git's and SQLite's messages, a child's traceback.
DISK_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "database or disk is full")
# The exit code of a training or evaluation process that ran out of disk (ENOSPC's number): the orchestrator
# stops the run on it instead of recording the block as a crash, and the same command trains it again later.
DISK_FULL_EXIT = 28


class DiskFull(OSError):
    """No room on the disk holding `folder`. str() is one sentence: where, and what to do."""

    def __init__(self, folder: str | os.PathLike, sentence: str | None = None):
        self.folder = str(folder)
        self.sentence = sentence or (f"The disk holding {self.folder} is full: free some space there and run the "
                                     "same command again; everything recorded so far is kept.")
        super().__init__(errno.ENOSPC, self.sentence, self.folder)

    def __str__(self) -> str:
        return self.sentence

    def __reduce__(self):  # rebuilt with its sentence when it crosses a process or Prefect's result store
        return (DiskFull, (self.folder, self.sentence))


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from, says the disk (or the user's quota) is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in DISK_FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_folder(exc: BaseException | None) -> str | None:
    """The folder a disk-full error names (DiskFull's, or the parent of an OSError's file), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull):
            return exc.folder
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS and exc.filename:
            path = Path(os.fsdecode(exc.filename))
            return str(path if path.is_dir() else path.parent)
        exc = exc.__cause__ or exc.__context__
    return None


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # no room even for an empty file (or a folder entry)
        if exc.errno in DISK_FULL_ERRNOS:
            raise DiskFull(target.parent) from exc
        raise
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600; records are meant to be readable like any other file
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        # The target is untouched; only our temporary file needs cleaning up.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, DiskFull) and exc.errno in DISK_FULL_ERRNOS:
            raise DiskFull(target.parent) from exc
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/filesystem; the rename is still atomic
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
