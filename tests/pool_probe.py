"""Flows for tests/test_pool_postgres.py's worker checks, run on the pool's workers (they import this module,
so the workers there have the project root on PYTHONPATH)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from prefect import flow


@flow(name="pool-probe")
def report_process(out: str) -> None:
    """Write what the run's process is: its parent, its environment, what was imported before it started."""
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    grandparent = int(Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()[1])
    Path(out).write_text(json.dumps({
        "pid": os.getpid(), "parent_cmdline": parent, "grandparent": grandparent,
        "probe_env": os.environ.get("AUTORESEARCH_PROBE"), "device": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "flows_pool_imported": "flows.pool" in sys.modules, "cwd": os.getcwd()}))


@flow(name="pool-probe-dies")
def die(code: int) -> None:
    """A run whose process ends without a word (as if killed): the worker must call it Crashed."""
    os._exit(code)
