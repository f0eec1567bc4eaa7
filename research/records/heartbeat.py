"""runs/<tag>/heartbeat.json: what the run is doing right now, for `autoresearch status` and for humans.

Written atomically at every phase change, so a reader on another terminal (or machine, through a shared
folder) never sees half a file. The pid and host let the status command tell "still working" from "the
process is gone"; the time tells "alive" from "stuck".
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import time
from pathlib import Path

from common.atomic import atomic_write_json
from research.records.layout import RunLayout

log = logging.getLogger(__name__)

PHASES = ("preparing", "baseline", "proposing", "training", "evaluating", "deciding", "done", "stopped", "failed")
FINAL_PHASES = frozenset({"done", "stopped", "failed"})
# One training is a 5-minute budget plus compile, evaluation and a deadline margin; beats come per phase,
# so silence shorter than this is normal.
DEFAULT_STALE_AFTER_S = 15 * 60


def heartbeat_path(path: str | os.PathLike) -> Path:
    """Accept the run folder or the file itself."""
    path = Path(path)
    return path if path.suffix == ".json" else RunLayout(path).heartbeat


def _iso(unix: float) -> str:
    return _dt.datetime.fromtimestamp(unix, tz=_dt.timezone.utc).isoformat(timespec="seconds")


class Heartbeat:
    def __init__(self, path: str | os.PathLike, tag: str | None = None):
        self.path = heartbeat_path(path)
        self.tag = tag if tag is not None else self.path.parent.name

    def beat(self, phase: str, exp: int | None = None, best: float | None = None,
             counts: dict | None = None, message: str = "") -> dict:
        if phase not in PHASES:
            raise ValueError(f"Heartbeat phase {phase!r} is not one of {', '.join(PHASES)}.")
        now = time.time()
        record = {
            "tag": self.tag,
            "phase": phase,
            "experiment": exp,
            "time": now,
            "time_iso": _iso(now),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "best_val_bpb": best,
            "counts": dict(counts or {}),
            "message": message,
        }
        atomic_write_json(self.path, record)
        return record


def read_heartbeat(path: str | os.PathLike) -> dict | None:
    """The last beat, or None when there is none (or it is unreadable: status must never crash)."""
    file = heartbeat_path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("Cannot read %s (%s).", file, err)
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OverflowError, ValueError):
        return False
    return True


def duration_text(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 12 min, 3.5 h, 2.0 days."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def describe_status(heartbeat: dict, now: float | None = None,
                    stale_after_s: float = DEFAULT_STALE_AFTER_S) -> str:
    """A few lines for `autoresearch status`: phase, experiment, best, counts, age, and whether it is alive."""
    now = time.time() if now is None else now
    tag = heartbeat.get("tag") or "?"
    phase = heartbeat.get("phase") or "unknown"
    exp = heartbeat.get("experiment")
    host = heartbeat.get("host") or "?"
    pid = heartbeat.get("pid")
    doing = f"{phase}" + (f" experiment {exp}" if exp is not None else "")
    lines = [f"Run '{tag}': {doing} (pid {pid} on host {host})."]
    best = heartbeat.get("best_val_bpb")
    lines.append(f"Best val_bpb: {best:.6f}" if isinstance(best, (int, float)) else "Best val_bpb: none yet")
    counts = heartbeat.get("counts") or {}
    if counts:
        lines.append("Experiments: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    if heartbeat.get("message"):
        lines.append(f"Note: {heartbeat['message']}")
    beat_time = heartbeat.get("time")
    age = now - beat_time if isinstance(beat_time, (int, float)) else None
    if age is None:
        lines.append("Last heartbeat: unknown time.")
    else:
        lines.append(f"Last heartbeat: {duration_text(age)} ago ({heartbeat.get('time_iso') or _iso(beat_time)}).")
    if phase in FINAL_PHASES:
        return "\n".join(lines)  # a finished run is expected to be silent
    if host == socket.gethostname() and isinstance(pid, int):
        if not pid_alive(pid):
            lines.append(f"Its process (pid {pid}) is gone: the run ended without a final beat; "
                         "run the same tag again to resume it.")
            return "\n".join(lines)
    elif host != socket.gethostname():
        lines.append(f"The run is on host {host}; its process cannot be checked from here.")
    if age is not None and age > stale_after_s:
        lines.append(f"Stale: no heartbeat for {duration_text(age)} (more than {duration_text(stale_after_s)}); "
                     "the run may be stuck.")
    return "\n".join(lines)
