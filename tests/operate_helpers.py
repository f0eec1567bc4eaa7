"""Helpers for the tests that operate autoresearch through a real Prefect server (tests/test_operate_*.py):
start and stop `prefect server start`, `autoresearch serve` and process workers, and talk to the server.

Processes are started in their own session and stopped by their process-group id: SIGINT first (a worker
and the server shut down cleanly on SIGINT, not SIGTERM), SIGKILL if they do not go.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# Small enough that a training takes a few seconds on 2 CPU cores.
TINY = ["preset=cpu", "budget.kind=steps", "budget.steps=3", "hparams.model.depth=2", "train.eval_tokens=8192",
        "decide.baseline_repeats=2", "hparams.batch.total_batch_tokens=1024", "hparams.batch.device_batch_size=4"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, api_url: str | None = None) -> dict:
    # No PREFECT_LOGGING_* here: what is served runs on the project's own logging defaults (prefect_ops/prefect_env.py),
    # so the UI test sees the Logs tab a user gets.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "storage"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        # Fast reactions instead of the production defaults (10-60 s loops).
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",  # expired slot leases (production: 15 s)
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        # SQLite under concurrent writers: wait for the lock instead of failing.
        "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
        "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "30",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "ab")
    return subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGINT to the process group, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_healthy(base_url: str, proc: subprocess.Popen, log: Path, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base_url}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def read_intervals(exp_dir: Path, phase: str = "train") -> list[dict]:
    path = Path(exp_dir) / "device.jsonl"
    if not path.is_file():
        return []
    return [entry for entry in map(json.loads, path.read_text().splitlines()) if entry["phase"] == phase]


def overlap_seconds(a: dict, b: dict) -> float:
    return min(a["finished_at"], b["finished_at"]) - max(a["started_at"], b["started_at"])


FLAKY_FLOW = '''
import pathlib, sys
from prefect import flow, task

marker = pathlib.Path(sys.argv[1])

@task(name="flaky", task_run_name="flaky-fails-once", retries=2, retry_delay_seconds=1)
def flaky():
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("transient failure (the test makes it fail once)")
    return "ok on retry"

@flow(name="retry-demo", flow_run_name="retry-demo")
def retry_demo():
    return flaky()

retry_demo()
'''
