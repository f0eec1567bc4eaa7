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


def test_a_running_pool_run_whose_heartbeat_stops_is_marked_crashed(tmp_path, monkeypatch):
    import prefect.client.orchestration

    fake = FakeClient()
    monkeypatch.setattr(prefect.client.orchestration, "get_client", lambda sync_client=True: fake)
    monkeypatch.setattr(pool_watch, "POLL_SECONDS", 0.05)
    beat = tmp_path / "pool-heartbeat.json"
    beat.write_text('{"beat": 7}')  # its last beat, never rewritten
    said = []
    started = time.monotonic()
    flow_run = pool_watch.wait_for_pool_run("id-1", beat, lost_after=0.5, server_patience=5, log=said.append)
    assert time.monotonic() - started >= 0.5  # not before the heartbeat had been still that long
    assert flow_run.state.is_crashed()
    assert "no heartbeat from its worker" in flow_run.state.message and fake.forced == [True]
    assert said and said[0].startswith("pool run exp-3 lr: lost")


def test_a_beating_pool_run_is_not_lost(tmp_path, monkeypatch):
    import prefect.client.orchestration
    from prefect.states import Completed

    fake = FakeClient()
    monkeypatch.setattr(prefect.client.orchestration, "get_client", lambda sync_client=True: fake)
    monkeypatch.setattr(pool_watch, "POLL_SECONDS", 0.05)
    beat = tmp_path / "pool-heartbeat.json"
    polls = {"count": 0}
    original = fake.read_flow_run

    def read_and_beat(flow_run_id):
        polls["count"] += 1
        beat.write_text(json.dumps({"beat": polls["count"]}))  # the worker is alive: each poll sees a new beat
        if polls["count"] == 30:  # well past lost_after
            fake.state = Completed()
        return original(flow_run_id)

    fake.read_flow_run = read_and_beat
    flow_run = pool_watch.wait_for_pool_run("id-2", beat, lost_after=0.3, server_patience=5, log=print)
    assert flow_run.state.is_completed() and fake.forced == []


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
