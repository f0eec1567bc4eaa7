"""Helpers for tests/test_pool_postgres.py: the head node (scripts/head_node.sh) on PostgreSQL, process workers
pinned to one "device" each, research runs started as the README starts them, and killing process trees.

Everything is started in its own session and stopped by process group; a SIGKILLed tree is found through /proc,
because a worker's flow-run processes may sit in sessions of their own.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.operate_helpers import (PROJECT_ROOT, VENV_BIN, free_port, server_env, start, stop, wait_for,
                                  wait_healthy)

HEAD_SCRIPT = PROJECT_ROOT / "scripts" / "head_node.sh"
POOL = "pg-pool"

# tests/test_flow_research.py's tiny run: a training is a few seconds on one core.
TINY_RUN = [
    "preset=cpu", "hparams.model.depth=2", "hparams.model.aspect_ratio=32", "hparams.model.head_dim=32",
    "hparams.batch.device_batch_size=8", "hparams.batch.total_batch_tokens=1024", "train.seq_len=128",
    "train.eval_tokens=4096", "train.eval_batch_size=8", "budget.kind=steps", "budget.steps=4",
    "decide.baseline_repeats=2", "proposer=local",
]


def postgres_missing() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    if shutil.which("initdb") is None and not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser to start PostgreSQL as the postgres user"
    return None


class Head:
    """scripts/head_node.sh in a temp folder on free ports: start, stop (the server only), close (all)."""

    def __init__(self, extra_env: dict | None = None):
        # Outside pytest's 0700 temp root: as root the database belongs to `postgres`, which must enter it.
        self.dir = Path(tempfile.mkdtemp(prefix="ar-head-"))
        self.port, self.pg_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.base}/api"
        self.home = self.dir / "prefect"
        self.home.mkdir()
        self.log = self.dir / "head.log"
        self.env = {**server_env(self.home), "AUTORESEARCH_HEAD_DIR": str(self.dir),
                    "AUTORESEARCH_PG_PORT": str(self.pg_port), "PREFECT_SERVER_PORT": str(self.port),
                    "AUTORESEARCH_POOL": POOL, **(extra_env or {})}
        self.proc = None

    def start(self, timeout: float = 180.0) -> float:
        """Until the server answers and the pool exists: head_node.sh creates the pool in the background once the
        server answers, and a test that deploys to the pool right after the health check found no pool."""
        started = time.monotonic()
        self.proc = start([str(HEAD_SCRIPT), "start"], self.env, self.log)
        wait_healthy(self.base, self.proc, self.log, timeout)
        wait_for(self.pool_exists, max(10.0, timeout - (time.monotonic() - started)), f"the work pool {POOL}")
        return time.monotonic() - started

    def pool_exists(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api}/work_pools/{POOL}", timeout=5) as response:
                return response.status == 200
        except OSError:  # 404 (not yet created) included: HTTPError is an OSError
            return False

    def stop_server(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def close(self) -> None:
        self.stop_server()
        subprocess.run([str(HEAD_SCRIPT), "stop-db"], env=self.env, timeout=120, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client_env(self) -> dict:
        return server_env(self.home, self.api)


def worker_env(head: Head, device: int) -> dict:
    """A worker pinned to one "device" by its environment, as README's recipe pins one to a GPU."""
    return {**head.client_env(), "CUDA_VISIBLE_DEVICES": str(device), "AUTORESEARCH_SLOT_SCOPE": f"dev{device}",
            "OMP_NUM_THREADS": "1",  # torch threads = 1: one core per training
            "PYTHONPATH": str(PROJECT_ROOT)}  # the project is installed; this adds the tests' probe flows


def start_worker(head: Head, device: int, name: str, kind: str = "warm") -> subprocess.Popen:
    """README's worker (`autoresearch worker`: runs forked from a warm process), or Prefect's process worker."""
    if kind == "warm":
        command = [str(VENV_BIN / "autoresearch"), "worker", "--pool", POOL, "--limit", "1", "--name", name]
    else:
        command = [str(VENV_BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "1", "--name", name]
    if shutil.which("taskset") and (os.cpu_count() or 1) > device:
        command = ["taskset", "-c", str(device), *command]  # and its trainings on that one core
    return start(command, worker_env(head, device), head.dir / f"{name}.log")


def research_command(runs: Path, tag: str, experiments: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "run", *TINY_RUN, "research.executor=pool", "research.parallel=2",
            f"research.pool.name={POOL}", f"paths.runs_dir={runs}", f"tag={tag}",
            f"research.max_experiments={experiments}", *extra]


def start_research(head: Head, runs: Path, tag: str, experiments: int, *extra: str) -> subprocess.Popen:
    return start(research_command(runs, tag, experiments, *extra), head.client_env(), runs / f"{tag}.log")


def children(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc (any session)."""
    parents: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and all it started, as if its machine went away; returns the pids killed."""
    victims = [pid, *children(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return victims


def head_processes(head_dir: Path) -> list[str]:
    """'pid command' of every live process started with this head's environment (AUTORESEARCH_HEAD_DIR), but
    PostgreSQL, which outlives the server on purpose (`head_node.sh stop-db` stops it)."""
    marker = f"AUTORESEARCH_HEAD_DIR={head_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if (entry / "comm").read_text().strip() == "postgres" or state == "Z":
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name} {command}")
    return found


def head_leftovers(head_dir: Path, seconds: float = 10.0) -> list[str]:
    """head_processes once they had `seconds` to end (a call under way is stopped within a fraction of one)."""
    deadline = time.monotonic() + seconds
    while (found := head_processes(head_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found
