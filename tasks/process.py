"""Run the training or evaluation process in isolation: its own process group, a log file, a deadline.

A crash, OOM, NaN or hang in the child cannot take the orchestrator down; past the deadline the whole
process group is killed. The child gets no secrets: ANTHROPIC_API_KEY is removed from its environment.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SECRET_ENV_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")

# Extra environment for every process started in the current context (thread or task): the device a
# training was given (CUDA_VISIBLE_DEVICES=...) reaches the child without threading it through every call.
# A ContextVar, not os.environ, because parallel trainings in one orchestrator each get their own device.
_context_env: ContextVar[dict] = ContextVar("autoresearch_child_env", default={})

# Processes started here, so a signal handler can stop them when the orchestrator is told to stop.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


@dataclass
class ProcessResult:
    returncode: int
    timed_out: bool
    seconds: float
    log_tail: str

    def describe_failure(self) -> str:
        if self.timed_out:
            return f"killed after {self.seconds:.0f} s: past its deadline (hung or far over budget)"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        return f"exited with code {self.returncode}"


@contextmanager
def child_env(extra: dict[str, str]):
    """Within this block, processes started from this context also get `extra` in their environment."""
    token = _context_env.set({**_context_env.get(), **extra})
    try:
        yield
    finally:
        _context_env.reset(token)


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(_context_env.get())
    env.update(extra or {})
    return env


def run_isolated(
    module: str,
    exp_dir: Path,
    log_path: Path,
    deadline_seconds: float,
    on_line: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
) -> ProcessResult:
    started = time.monotonic()
    tail: list[str] = []
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(exp_dir)],
            cwd=PROJECT_ROOT,
            env=child_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: one killpg stops it and anything it spawned
        )
        with _running_lock:
            _running.add(proc)
        timed_out = threading.Event()

        def kill_at_deadline() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(deadline_seconds, kill_at_deadline)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail.append(line.rstrip("\n").split("\r")[-1])
                del tail[:-40]
                if on_line:
                    on_line(tail[-1])
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            with _running_lock:
                _running.discard(proc)
    return ProcessResult(proc.returncode, timed_out.is_set(), time.monotonic() - started, "\n".join(tail[-20:]))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all_children() -> None:
    """Kill every training/evaluation process this orchestrator started (on SIGINT/SIGTERM)."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _kill_group(proc)


def run_attached(module: str, exp_dir: Path) -> int:
    """Run the process with the terminal attached (live progress bar), for `autoresearch train`."""
    return subprocess.call([sys.executable, "-m", module, str(exp_dir)], cwd=PROJECT_ROOT, env=child_environment())
