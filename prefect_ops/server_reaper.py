"""End Prefect's temporary server when the `autoresearch` process that started it dies, even by SIGKILL.

Prefect stops its temporary server from an atexit hook, which kill -9 or the OOM killer never lets run: the
uvicorn process then lives on with its port, its memory and its SQLite database open, one more per killed run,
and an autonomous loop that is killed and resumed often piles them up. So the orchestrator starts the server
itself and leaves a small reaper process beside it: the reaper polls its parent and, once that parent is gone,
terminates the server. A clean exit needs no reaper (Prefect's own hook stops the server first); the reaper
then finds nothing to do and exits.

    python -m prefect_ops.server_reaper ORCHESTRATOR_PID SERVER_PID     (started by tie_temporary_server_to_us)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.5
TERM_GRACE_SECONDS = 5.0
# The reaper's handle, kept for the life of this process: a dropped Popen of a running child warns.
_reapers: list[subprocess.Popen] = []


def tie_temporary_server_to_us() -> int | None:
    """Start Prefect's temporary server now (when no PREFECT_API_URL points elsewhere) and a reaper for it.

    Prefect's client later asks for the same server (a per-port singleton) and finds it running. Returns the
    reaper's pid, or None when a real server is configured and there is nothing of ours to end.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None  # a real server (not ours to end), or none allowed: Prefect's client says so itself
    server = SubprocessASGIServer()
    server.start()
    if server.server_process is None:
        return None
    reaper = subprocess.Popen(
        [sys.executable, "-m", "prefect_ops.server_reaper", str(os.getpid()), str(server.server_process.pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _reapers.append(reaper)
    return reaper.pid


def looks_like_the_server(pid: int) -> bool:
    """False once pid is gone; on Linux also when the pid now belongs to something other than a uvicorn server
    (pids are reused), so the reaper never hits a stranger."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or someone else's process: not the server we started
        return False
    if not sys.platform.startswith("linux"):
        return True
    try:
        return b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
    except OSError:
        return False


def end_server(pid: int) -> None:
    """SIGTERM (uvicorn shuts down cleanly), then SIGKILL if it is still there after the grace period."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, 0.0)):
        if not looks_like_the_server(pid):
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and looks_like_the_server(pid):
            time.sleep(0.1)


def watch(parent: int, server: int) -> None:
    while os.getppid() == parent and looks_like_the_server(server):
        time.sleep(POLL_SECONDS)
    if os.getppid() != parent:  # the orchestrator is gone (a clean exit has stopped the server already)
        end_server(server)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the orchestrator handles it
    if len(argv) != 2 or not all(arg.isdigit() for arg in argv):
        print("usage: python -m prefect_ops.server_reaper ORCHESTRATOR_PID SERVER_PID", file=sys.stderr)
        return 2
    watch(int(argv[0]), int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
