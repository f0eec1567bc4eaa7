"""Waiting for a pool run without trusting it blindly: a lost worker and a restarting server.

A worker that dies with its machine (SIGKILL, power, a kernel panic) leaves its flow run `Running` on the
server for ever: nothing on the open-source server marks it Crashed unless an automation is set up. So the
pool run beats a heartbeat file in the experiment folder (on the shared path the outcome is read from anyway),
and the research flow calls the run lost when the beat has not changed for `lost_after` seconds of its own
clock (never comparing two hosts' clocks). It then marks the flow run Crashed, so the UI says what happened.

The server itself may be restarted while the research flow waits (an upgrade, a crash): reading the flow run
then fails for a while; the wait goes on for `server_patience` seconds before it gives up in one sentence.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from common.atomic import atomic_write_json
from research.errors import ResearchStopped

BEAT_SECONDS = 2.0   # how often a pool run says it is alive
POLL_SECONDS = 0.25  # how often the research flow looks at its pool runs (half of it is every experiment's wait)


class ServerUnreachable(ResearchStopped):
    """The Prefect server did not answer for longer than the patience allowed: the run stops in one sentence."""


@contextmanager
def heartbeat(path: Path, flow_run_id: str | None):
    """On the worker: rewrite `path` every BEAT_SECONDS while the block runs (a daemon thread)."""
    stop = threading.Event()
    identity = {"host": socket.gethostname(), "pid": os.getpid(), "flow_run_id": flow_run_id}

    def beat():
        count = 0
        while True:
            count += 1
            try:
                atomic_write_json(path, {**identity, "beat": count, "time": time.time()})
            except OSError:
                pass  # a full or briefly unmounted share: the next beat tries again
            if stop.wait(BEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="pool-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _read_beat(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _server_trouble(exc: BaseException) -> bool:
    """Connection refused, a timeout, or a 5xx while the server restarts; anything else is a real error."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    if isinstance(exc, (httpx.TransportError, OSError)):
        return True
    return isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code >= 500


def wait_for_pool_run(flow_run_id, beat_path: Path, lost_after: float, server_patience: float, log=print):
    """Poll the flow run until it is final; returns it. A run whose heartbeat stopped is marked Crashed."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    last_beat, beat_changed = _read_beat(beat_path), time.monotonic()
    unreachable_since = None
    while True:
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(flow_run_id)
                if unreachable_since is not None:
                    log(f"the Prefect server answers again after {time.monotonic() - unreachable_since:.0f} s")
                    unreachable_since = None
                state = flow_run.state
                if state is not None and state.is_final():
                    return flow_run
                beat = _read_beat(beat_path)
                if beat != last_beat:
                    last_beat, beat_changed = beat, time.monotonic()
                # Only a run a worker took (Pending while its process starts, then Running) can be lost; one
                # still Scheduled waits for a free worker, however long.
                taken = state is not None and (state.is_running() or state.is_pending())
                if taken and time.monotonic() - beat_changed > lost_after:
                    message = (f"lost: no heartbeat from its worker for {lost_after:.0f} s "
                               f"(the worker or its machine died)")
                    client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
                    log(f"pool run {flow_run.name}: {message}")
                    return client.read_flow_run(flow_run_id)
                if not taken:
                    beat_changed = time.monotonic()  # the clock starts when a worker takes it
        except Exception as exc:  # noqa: BLE001 - sorted by _server_trouble, re-raised otherwise
            if not _server_trouble(exc):
                raise
            now = time.monotonic()
            if unreachable_since is None:
                unreachable_since = now
                log(f"the Prefect server does not answer ({type(exc).__name__}); waiting up to "
                    f"{server_patience:.0f} s for it")
            if now - unreachable_since > server_patience:
                raise ServerUnreachable(
                    f"The Prefect server did not answer for {server_patience:.0f} s: start it again "
                    "(scripts/head_node.sh start) and rerun the same command; the run resumes where it stopped.") from None
            beat_changed = now  # a worker that cannot reach the server is not counted as lost meanwhile
        time.sleep(POLL_SECONDS)
