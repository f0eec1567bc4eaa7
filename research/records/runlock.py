"""One process per run tag: runs/<tag>/run.lock.

Two runs writing the same results.tsv and run repository would interleave experiment numbers and commits.
The lock file records pid, host and start time (for the message and for humans); the real lock is an
fcntl.flock on it, which the kernel drops when the holder dies however it dies, so a stale file is
recognised without guessing from pids.

Race-free by construction:
- A new lock file is written and flocked under a private name first, then linked into place with
  os.link (atomic, fails if the name exists: the O_EXCL step). So the file at run.lock always has content
  and is always flocked by its owner from the moment it appears.
- Taking over a dead holder's file: flock the old file (only one process can), check it is still the file
  at run.lock (the inode), then os.replace our own already-flocked file over it. A process that locked the
  old inode in between sees that it is no longer at run.lock and starts over.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

from research.errors import ResearchStopped
from research.records.heartbeat import pid_alive
from research.records.layout import RunLayout

log = logging.getLogger(__name__)


class RunLocked(ResearchStopped):
    """Another live process holds this run's lock."""


def _read_info(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (here.st_dev, here.st_ino)


class RunLock:
    def __init__(self, run_dir: str | os.PathLike, tag: str | None = None):
        self.run_dir = Path(run_dir)
        self.tag = tag if tag is not None else self.run_dir.name
        self.path = RunLayout(self.run_dir).lock
        self._fd: int | None = None

    def _refuse(self, info: dict) -> RunLocked:
        pid, host = info.get("pid", "?"), info.get("host", "?")
        if host not in ("?", socket.gethostname()):
            return RunLocked(f"Run '{self.tag}' is already running (pid {pid} on host {host}); wait for it or "
                             f"choose another tag=, or delete {self.path} if that run is gone.")
        return RunLocked(f"Run '{self.tag}' is already running (pid {pid} on host {host}); "
                         f"wait for it or choose another tag=.")

    def _new_locked_file(self) -> tuple[int, Path]:
        tmp = self.run_dir / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # uncontended: nobody else knows this name
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "started_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fsync(fd)
        return fd, tmp

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError("RunLock is not re-entrant.")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = self._new_locked_file()
        try:
            while True:
                try:
                    os.link(tmp, self.path)  # the O_EXCL step: fails if a lock file exists
                    break
                except FileExistsError:
                    pass
                if self._take_over(tmp):
                    break
        except BaseException:
            os.close(fd)
            raise
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass  # renamed into place by a takeover
        self._fd = fd

    def _take_over(self, tmp: Path) -> bool:
        """True when the existing lock was dead and is now ours; raises RunLocked when it is alive;
        False when the file changed under us (try again)."""
        try:
            old = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False  # released meanwhile: retry the link
        try:
            if not _try_flock(old):
                raise self._refuse(_read_info(self.path))
            if not _same_file(old, self.path):
                return False  # we locked a file someone already replaced or removed
            info = _read_info(self.path)
            host = info.get("host")
            pid = info.get("pid")
            if host is not None and host != socket.gethostname():
                # flock may not reach across machines (NFS): we cannot tell whether that run is alive.
                raise self._refuse(info)
            if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
                log.warning("Run '%s': pid %s is alive but does not hold the lock (pid reused); taking the lock over.",
                            self.tag, pid)
            else:
                log.warning("Run '%s': taking over the lock left by pid %s on host %s, which is no longer running.",
                            self.tag, pid, host)
            os.replace(tmp, self.path)  # our flocked file replaces the dead one in one step
            return True
        finally:
            os.close(old)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # Unlink while still holding the flock, so nobody can lock this inode and believe it is current.
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_lock(run_dir: str | os.PathLike) -> dict | None:
    """The lock file's pid/host/start, or None when the run is not locked."""
    path = RunLayout(run_dir).lock
    return _read_info(path) if path.exists() else None
