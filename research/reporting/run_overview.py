"""What `autoresearch status` prints: every run under runs/ in one table, or one run in detail.

Read only from the run's own files (heartbeat, ledger, settings.json), never from Prefect, so it works on a
machine where nothing is running and while a run writes: the ledger is read, never repaired, and a damaged
file gives a blank cell instead of an error.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from research.records.heartbeat import (DEFAULT_STALE_AFTER_S, FINAL_PHASES, describe_status, duration_text, pid_alive,
                                read_heartbeat)
from research.records.layout import RunLayout
from research.records.ledger import Ledger, LedgerError
from research.reporting.report import results_table_markdown, summarize
from research.records.run_settings import planned_experiments


def _rows(layout: RunLayout) -> list[dict]:
    try:
        return Ledger(layout.results).rows()
    except (LedgerError, OSError):
        return []


def ago(seconds: float) -> str:
    return f"{duration_text(seconds)} ago"


def liveness(heartbeat: dict | None, now: float, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> str:
    """finished | alive | stale (its process lives but has not beaten for long) | dead | on <host> | unknown."""
    if heartbeat is None:
        return "unknown"
    if heartbeat.get("phase") in FINAL_PHASES:
        return "finished"
    host, pid = heartbeat.get("host"), heartbeat.get("pid")
    if host != socket.gethostname():
        return f"on {host}"
    if not isinstance(pid, int) or not pid_alive(pid):
        return "dead"
    beat = heartbeat.get("time")
    return "stale" if isinstance(beat, (int, float)) and now - beat > stale_after_s else "alive"


def disk_use(folder: Path) -> tuple[int, int]:
    """(bytes, checkpoints) of the files under a run folder; a hard link counts once (finalize's test split links
    its arm's checkpoint). What a run keeps on disk: the checkpoints unless train.keep_checkpoints deleted them."""
    seen, total, checkpoints = set(), 0, 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:  # deleted while we walk: a run writes as we read
                continue
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
            checkpoints += name.endswith(".npz")  # the only .npz in a run folder: checkpoints (training/checkpoint.py)
    return total, checkpoints


def size_text(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def run_line(layout: RunLayout, now: float) -> dict:
    heartbeat = read_heartbeat(layout.heartbeat)
    rows = _rows(layout)
    planned = planned_experiments(layout.settings)
    best = summarize(rows)["best_val_bpb"] if rows else (heartbeat or {}).get("best_val_bpb")
    times = [path.stat().st_mtime for path in (layout.heartbeat, layout.results) if path.is_file()]
    return {"tag": layout.root.name, "phase": (heartbeat or {}).get("phase") or "unknown",
            "done": f"{len(rows)} of {planned}" if planned else str(len(rows)),
            "best": "" if best is None else f"{best:.6f}",
            "last": ago(now - max(times)) if times else "", "alive": liveness(heartbeat, now),
            "disk": size_text(disk_use(layout.root)[0])}


def runs_table(runs_root: Path, now: float | None = None) -> str:
    """Every run folder under `runs_root` (one with a heartbeat or a ledger), most recently active first."""
    now = time.time() if now is None else now
    folders = [p for p in Path(runs_root).glob("*") if p.is_dir() and (RunLayout(p).heartbeat.is_file()
                                                                     or RunLayout(p).results.is_file())]
    folders.sort(key=lambda p: max(f.stat().st_mtime for f in (RunLayout(p).heartbeat, RunLayout(p).results)
                                   if f.is_file()), reverse=True)
    lines = ["| run | phase | experiments | best val_bpb | last activity | process | disk |",
             "|---|---|---:|---:|---|---|---:|"]
    for folder in folders:
        line = run_line(RunLayout(folder), now)
        lines.append("| {tag} | {phase} | {done} | {best} | {last} | {alive} | {disk} |".format(**line))
    return "\n".join(lines) + "\n"


def run_detail(layout: RunLayout, now: float | None = None, last: int = 5) -> str:
    """The heartbeat's account of one run, then the last `last` rows of its ledger."""
    heartbeat = read_heartbeat(layout.heartbeat)
    rows = _rows(layout)
    out = [describe_status(heartbeat, now) if heartbeat else f"No heartbeat in {layout.root} yet."]
    planned = planned_experiments(layout.settings)
    out.append(f"Experiments recorded: {len(rows)}" + (f" of {planned} planned." if planned else "."))
    used, checkpoints = disk_use(layout.root)
    out.append(f"Disk use: {size_text(used)} in {layout.root}, {checkpoints} checkpoint{'s' * (checkpoints != 1)} kept.")
    if rows:
        out += ["", f"Last {min(last, len(rows))} experiments:", "", results_table_markdown(rows, limit=last).rstrip()]
    return "\n".join(out) + "\n"
