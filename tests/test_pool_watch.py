"""flows/pool_watch.py without a server: the pool run's heartbeat, a run whose heartbeat stops is marked
Crashed, and a server that does not come back ends the wait in one sentence."""
from __future__ import annotations

import json
import time
import types

import pytest

import flows.pool_watch as pool_watch


def test_the_heartbeat_beats_while_the_block_runs_and_stops_after(tmp_path, monkeypatch):
    monkeypatch.setattr(pool_watch, "BEAT_SECONDS", 0.05)
    path = tmp_path / "pool-heartbeat.json"
    with pool_watch.heartbeat(path, "run-1"):
        time.sleep(0.3)
        inside = json.loads(path.read_text())
    after = json.loads(path.read_text())
    time.sleep(0.2)
    assert inside["flow_run_id"] == "run-1" and inside["beat"] >= 2
    assert json.loads(path.read_text()) == after  # no beat once the block is over


class FakeClient:
    """get_client(sync_client=True) for one flow run that stays Running (its worker died silently)."""

    def __init__(self):
        from prefect.states import Running

        self.state = Running()
        self.forced = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read_flow_run(self, flow_run_id):
        return types.SimpleNamespace(id=flow_run_id, name="exp-3 lr", state=self.state)

    def set_flow_run_state(self, flow_run_id, state, force=False):
        self.forced.append(force)
        self.state = state


def test_a_running_pool_run_whose_heartbeat_stops_is_marked_crashed(tmp_path, monkeypatch, clock):
    import prefect.client.orchestration

    fake = FakeClient()
    monkeypatch.setattr(prefect.client.orchestration, "get_client", lambda sync_client=True: fake)
    beat = tmp_path / "pool-heartbeat.json"
    beat.write_text('{"beat": 7}')  # its last beat, never rewritten
    said = []
    started = clock.monotonic()
    flow_run = pool_watch.wait_for_pool_run("id-1", beat, lost_after=0.5, server_patience=5, log=said.append)
    assert clock.monotonic() - started == 0.75  # the first poll (every 0.25 s) after the heartbeat was still 0.5 s
    assert flow_run.state.is_crashed()
    assert "no heartbeat from its worker" in flow_run.state.message and fake.forced == [True]
    assert said and said[0].startswith("pool run exp-3 lr: lost")


def test_a_beating_pool_run_is_not_lost(tmp_path, monkeypatch, clock):
    import prefect.client.orchestration
    from prefect.states import Completed

    fake = FakeClient()
    monkeypatch.setattr(prefect.client.orchestration, "get_client", lambda sync_client=True: fake)
    beat = tmp_path / "pool-heartbeat.json"
    polls = {"count": 0}
    original = fake.read_flow_run

    def read_and_beat(flow_run_id):
        polls["count"] += 1
        beat.write_text(json.dumps({"beat": polls["count"]}))  # the worker is alive: each poll sees a new beat
        if polls["count"] == 30:  # 7.5 s of polls, 25 times lost_after
            fake.state = Completed()
        return original(flow_run_id)

    fake.read_flow_run = read_and_beat
    flow_run = pool_watch.wait_for_pool_run("id-2", beat, lost_after=0.3, server_patience=5, log=print)
    assert flow_run.state.is_completed() and fake.forced == [] and polls["count"] == 30


def test_a_server_that_does_not_come_back_stops_the_wait_in_one_sentence(tmp_path, monkeypatch):
    import httpx
    import prefect.client.orchestration

    def refused(sync_client=True):
        raise httpx.ConnectError("All connection attempts failed")

    monkeypatch.setattr(prefect.client.orchestration, "get_client", refused)
    monkeypatch.setattr(pool_watch, "POLL_SECONDS", 0.05)
    said = []
    with pytest.raises(pool_watch.ServerUnreachable) as caught:
        pool_watch.wait_for_pool_run("id-3", tmp_path / "none", lost_after=0.1, server_patience=0.3, log=said.append)
    message = str(caught.value)
    assert message.count(". ") == 0 and message.endswith(".") and "scripts/head_node.sh start" in message
    assert said == ["the Prefect server does not answer (ConnectError); waiting up to 0 s for it"]


# --- the watch on a fake clock: exact times, near the thresholds, and the states a real server passes through ---

class Clock:
    """pool_watch's `time` module: monotonic() reads it, sleep() advances it (no real waiting)."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def time(self):
        return self.now


class Server:
    """A flow run whose state, and whether the server answers, follow a script keyed by the fake clock's time.
    `script`: [(from time, state name or an exception to raise)], the last entry at or before now applies."""

    def __init__(self, clock, script):
        self.clock, self.script, self.forced, self.reads = clock, script, [], []

    def __call__(self, sync_client=None):
        assert sync_client is True  # the watch runs in a plain thread: the sync client, not the async one
        return self

    def __enter__(self):
        what = self.current()
        if isinstance(what, BaseException):
            raise what
        return self

    def __exit__(self, *exc):
        return False

    def current(self):
        # A watch that never ends under a script that should end it would hang the suite: an hour of fake time fails.
        assert self.clock.now - 1000.0 < 3600, "the watch did not end"
        return [what for since, what in self.script if since <= self.clock.now - 1000.0][-1]

    def read_flow_run(self, flow_run_id):
        from prefect import states

        assert flow_run_id == "id"  # the run it was asked to watch, every time
        self.reads.append(self.clock.now - 1000.0)
        what = self.current()
        state = what if isinstance(what, states.State) else getattr(states, what)()
        if self.forced:
            state = self.forced[-1]
        return types.SimpleNamespace(id=flow_run_id, name="exp-5 wd", state=state)

    def set_flow_run_state(self, flow_run_id, state, force=False):
        assert force and flow_run_id == "id"
        self.forced.append(state)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(pool_watch, "time", fake)
    return fake


def watch(monkeypatch, clock, script, tmp_path, lost_after=3.0, patience=10.0):
    import prefect.client.orchestration

    server = Server(clock, script)
    monkeypatch.setattr(prefect.client.orchestration, "get_client", server)
    beat = tmp_path / "pool-heartbeat.json"
    beat.write_text('{"beat": 1}')  # never rewritten: the worker, if any, is silent
    said = []
    flow_run = pool_watch.wait_for_pool_run("id", beat, lost_after=lost_after, server_patience=patience, log=said.append)
    return flow_run, server, said, clock.now - 1000.0


def test_a_run_still_scheduled_is_never_lost_however_long_it_waits(monkeypatch, clock, tmp_path):
    # Scheduled for 60 s (twenty times lost_after: no worker free), then a worker takes it and it completes.
    flow_run, server, said, _ = watch(monkeypatch, clock, [(0, "Scheduled"), (60, "Running"), (61, "Completed")],
                                      tmp_path)
    assert flow_run.state.is_completed() and server.forced == [] and said == []


def test_a_pending_run_whose_worker_went_silent_is_lost_lost_after_from_when_it_was_taken(monkeypatch, clock,
                                                                                           tmp_path):
    # Scheduled until 20 s, then Pending (a worker took it and its process never started) and never beats.
    flow_run, server, said, ended = watch(monkeypatch, clock, [(0, "Scheduled"), (20, "Pending")], tmp_path)
    assert flow_run.state.is_crashed() and len(server.forced) == 1
    # Last seen Scheduled at the 19.75 s poll (polls every 0.25 s), where the clock starts: lost at the first poll
    # more than 3 s later, 23.0 s, and not at 3 s, when it was still waiting for a worker.
    assert ended == 23.0 and server.reads[-2:] == [23.0, 23.0]  # the poll that marks it, then the read back
    assert said == ["pool run exp-5 wd: lost: no heartbeat from its worker for 3 s (the worker or its machine died)"]


def test_a_running_run_is_lost_only_after_lost_after_not_at_it(monkeypatch, clock, tmp_path):
    flow_run, server, said, ended = watch(monkeypatch, clock, [(0, "Running")], tmp_path, lost_after=1.0)
    # Polls at 0, 0.25, ... : at 1.0 the beat has been still exactly lost_after (not more), at 1.25 it is lost.
    assert flow_run.state.is_crashed() and server.reads[-2:] == [1.25, 1.25]


def test_a_server_outage_then_recovery_goes_on_waiting_and_does_not_count_the_outage_against_the_worker(
        monkeypatch, clock, tmp_path):
    import httpx

    refused = httpx.ConnectError("All connection attempts failed")
    # Running and beating is unknown during the outage (2 s to 9 s, under the 10 s patience); the worker's beat file
    # does not change in that time either. After it, the run completes at 10 s.
    flow_run, server, said, ended = watch(monkeypatch, clock, [(0, "Running"), (2, refused), (9, "Running"),
                                                               (10, "Completed")], tmp_path, lost_after=3.0)
    assert flow_run.state.is_completed() and server.forced == []
    assert said == ["the Prefect server does not answer (ConnectError); waiting up to 10 s for it",
                    "the Prefect server answers again after 7 s"]


def test_a_server_error_5xx_is_an_outage_and_a_4xx_is_a_real_error(monkeypatch, clock, tmp_path):
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    def status_error(code):
        request = httpx.Request("GET", "http://server/api/flow_runs/id")
        return PrefectHTTPStatusError(f"{code}", request=request, response=httpx.Response(code, request=request))

    flow_run, _, said, _ = watch(monkeypatch, clock, [(0, status_error(500)), (1, "Completed")], tmp_path)
    assert flow_run.state.is_completed() and said[0].startswith("the Prefect server does not answer (PrefectHTTPStatusError)")
    with pytest.raises(PrefectHTTPStatusError):
        watch(monkeypatch, clock, [(0, status_error(499))], tmp_path)
    with pytest.raises(ValueError):
        watch(monkeypatch, clock, [(0, ValueError("a bug, not an outage"))], tmp_path)


def test_an_outage_exactly_as_long_as_the_patience_is_waited_out_and_a_longer_one_is_not(monkeypatch, clock, tmp_path):
    import httpx

    refused = httpx.ConnectError("refused")
    # Unreachable from 0 s; the poll at 2.0 s sees it down exactly `patience` long: not more, so it waits on.
    flow_run, _, said, _ = watch(monkeypatch, clock, [(0, refused), (2.25, "Completed")], tmp_path, patience=2.0)
    assert flow_run.state.is_completed() and said[-1] == "the Prefect server answers again after 2 s"
    clock.now = 1000.0
    with pytest.raises(pool_watch.ServerUnreachable, match="did not answer for 2 s"):
        watch(monkeypatch, clock, [(0, refused), (2.5, "Completed")], tmp_path, patience=2.0)
    assert clock.now - 1000.0 == 2.25  # it gave up at the first poll past the patience
