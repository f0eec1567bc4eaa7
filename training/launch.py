"""How the orchestrator starts the training or evaluation process: isolated, in its own process group, with a
log file and a watchdog. It runs in the orchestrator, beside the entry points it starts, and like the rest of
training/ it needs no Prefect: the tasks and the CLI both call it.

A crash, OOM, NaN or hang in the child cannot take the orchestrator down; past its deadline, or after too
long without a line of output, the whole process group is killed. The child gets no secrets: ANTHROPIC_API_KEY
is removed from its environment.
"""
from __future__ import annotations

import json
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

from common.atomic import DISK_FULL_EXIT, DiskFull, is_disk_full
from common.paths import PROJECT_ROOT
from training.run_config import ExperimentDir

SECRET_ENV_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")

# Extra environment for every process started in the current context (thread or task): the device a
# training was given (CUDA_VISIBLE_DEVICES=...) reaches the child without threading it through every call.
# A ContextVar, not os.environ, because parallel trainings in one orchestrator each get their own device.
_context_env: ContextVar[dict] = ContextVar("autoresearch_child_env", default={})


@dataclass
class ProcessResult:
    returncode: int
    killed_by_watchdog: str | None  # "deadline" or "silence" when the watchdog killed it, else None
    seconds: float
    log_tail: str
    silence_seconds: float | None = None

    def describe_failure(self) -> str:
        if self.killed_by_watchdog == "deadline":
            return f"killed after {self.seconds:.0f} s: past its deadline (hung or far over budget)"
        if self.killed_by_watchdog == "silence":
            return (f"killed after {self.seconds:.0f} s: no output for {self.silence_seconds:.0f} s "
                    "(hung, or one step slower than that)")
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        return f"exited with code {self.returncode}"

    def raise_if_disk_full(self, folder: Path) -> None:
        """A child that ran out of disk exits DISK_FULL_EXIT after printing `disk full: <sentence>`: stop the run
        with that sentence (nothing was recorded for it, so the same command runs it again later)."""
        if self.returncode != DISK_FULL_EXIT:
            return
        said = [line.split("disk full: ", 1)[1] for line in self.log_tail.splitlines() if "disk full: " in line]
        raise DiskFull(folder, said[-1] if said else None)


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
    deadline_seconds: float | None,
    on_line: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    silence_seconds: float | None = None,
) -> ProcessResult:
    """`deadline_seconds` bounds the whole run, `silence_seconds` the time between two lines of output;
    either may be None (no such limit)."""
    try:
        return _run_isolated(module, exp_dir, log_path, deadline_seconds, on_line, env, silence_seconds)
    except OSError as exc:  # the log could not be written: the child is killed, nothing of it is recorded
        if is_disk_full(exc):
            raise DiskFull(Path(log_path).parent) from exc
        raise


def _run_isolated(module, exp_dir, log_path, deadline_seconds, on_line, env, silence_seconds) -> ProcessResult:
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
        watchdog = _Watchdog(proc, started, deadline_seconds, silence_seconds)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                watchdog.saw_output()
                log.write(line)
                log.flush()
                tail.append(line.rstrip("\n").split("\r")[-1])
                del tail[:-40]
                if on_line:
                    on_line(tail[-1])
            proc.wait()
        finally:
            watchdog.stop()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
    return ProcessResult(proc.returncode, watchdog.fired, time.monotonic() - started, "\n".join(tail[-20:]),
                         silence_seconds)


class _Watchdog:
    """Kills the child's process group past the deadline, or once it has been silent for too long."""

    POLL_SECONDS = 0.25

    def __init__(self, proc: subprocess.Popen, started: float, deadline: float | None, silence: float | None):
        self.proc, self.started, self.deadline, self.silence = proc, started, deadline, silence
        self.last_output = started
        self.fired: str | None = None
        self._stopped = threading.Event()
        if deadline is not None or silence is not None:
            threading.Thread(target=self._watch, daemon=True, name="autoresearch-watchdog").start()

    def saw_output(self) -> None:
        self.last_output = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(self.POLL_SECONDS):
            now = time.monotonic()
            if self.deadline is not None and now - self.started >= self.deadline:
                self.fired = "deadline"
            elif self.silence is not None and now - self.last_output >= self.silence:
                self.fired = "silence"
            else:
                continue
            _kill_group(self.proc)
            return


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def finished_metrics(result: Path, needs: Path | None = None) -> dict | None:
    """The outcome a process recorded in `result` (metrics.json, eval.json) if that attempt ended: a success
    (with `needs`, e.g. the checkpoint, on disk) or a real failure. None when it must run (again)."""
    if not result.is_file():
        return None
    try:
        metrics = json.loads(result.read_text())
    except json.JSONDecodeError:
        return None
    if metrics.get("status") == "ok" and (needs is None or needs.is_file()):
        return metrics
    if metrics.get("status") == "failed" and metrics.get("kind") != "interrupted":
        return metrics
    return None


def finished_training(exp_dir: str | os.PathLike) -> dict | None:
    """metrics.json's outcome if the training ended: a success whose checkpoint is on disk or was released after
    its evaluation scored it (train.keep_checkpoints=false deletes it then, tasks/evaluate.py), or a real failure.
    None when it must run (again): a resumed run never retrains a finished training for a deleted checkpoint."""
    files = ExperimentDir(exp_dir)
    done = finished_metrics(files.metrics, files.checkpoint)
    if done is None and (finished_metrics(files.evaluation) or {}).get("status") == "ok":
        done = finished_metrics(files.metrics)
    return done


def run_attached(module: str, exp_dir: Path) -> int:
    """Run the process with the terminal attached (live progress bar), for `autoresearch train`."""
    return subprocess.call([sys.executable, "-m", module, str(exp_dir)], cwd=PROJECT_ROOT, env=child_environment())
