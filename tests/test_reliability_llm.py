"""LLM faults through the fake Anthropic server: every scenario of bench/faults.py ends as expected.

Proposer level (tasks.propose.propose_change, what the propose task runs): retried and recovered, re-asked,
recorded as `skip`, handed to the task's retries (transient), or the run stopped with one sentence (fatal).
The whole-flow cases are in tests/test_reliability_run.py.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from faults import LLM_SCENARIOS, run_llm_scenario  # noqa: E402

from research.errors import ProposerFatal  # noqa: E402
from tasks.propose import _retry_transient  # noqa: E402


@pytest.mark.parametrize("scenario", LLM_SCENARIOS, ids=[s.name for s in LLM_SCENARIOS])
def test_llm_fault_has_its_expected_outcome(scenario, tmp_path):
    result = run_llm_scenario(scenario, tmp_path)
    assert result["outcome"] == scenario.expected, result
    # An empty `words` would be in every text: each scenario must name the reason it expects.
    assert scenario.words and scenario.words in result["text"], result
    assert not result["leaked"], "the API key appeared in a message, a request body or proposal.json"
    if scenario.expected in ("stop", "transient", "skip"):
        assert result["one_sentence"], result["text"]


def test_skip_is_recorded_and_never_asked_again(tmp_path):
    scenario = next(s for s in LLM_SCENARIOS if s.expected == "skip")
    run_llm_scenario(scenario, tmp_path)
    folder = next(tmp_path.iterdir())
    record = json.loads((folder / "proposal.json").read_text())
    assert record["status"] == "skip" and record["attempts"] == 3
    # A resumed run reads proposal.json: the fake has nothing scripted, so a second call would fail.
    again = run_llm_scenario(type(scenario)(scenario.name, lambda: [], "skip", scenario.words), tmp_path)
    assert again["calls"] == 0 and again["outcome"] == "skip"


class _State:
    def __init__(self, exc):
        self.exc = exc

    def result(self):
        raise self.exc


def test_only_transient_errors_are_retried_by_the_task():
    from research.proposing.proposers import ProposerTransient

    assert _retry_transient(None, None, _State(ProposerTransient("x"))) is True
    assert _retry_transient(None, None, _State(ProposerFatal("x"))) is False


def test_the_propose_task_retries_a_real_transient_failure_three_times_with_its_delays(tmp_path, monkeypatch):
    """The Prefect task itself against a fake API that is overloaded on every call: 1 + 3 attempts, then the
    transient error. The delays are read back from the AwaitingRetry states the task recorded (its own 10/30/90 s),
    while the engine's sleep is skipped so the test does not wait them."""
    import types

    import prefect.task_engine
    import yaml
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

    import fake_anthropic as fa
    from faults import FAST, SENTINEL, llm_context
    from research.proposing.proposers import ProposerTransient
    from tasks.propose import propose_task

    monkeypatch.setattr(prefect.task_engine, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    cfg = yaml.safe_load((ROOT / "conf/proposer/claude.yaml").read_text())
    # Called as a task outside a flow (as a flow would call it, minus the flow): its log lines have no flow run.
    quiet = temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"})
    with quiet, fa.FakeAnthropic([], default=fa.overloaded(retry_after=0.01)) as fake:
        state = propose_task(2, str(tmp_path / "exp2"), {**cfg, **FAST, "base_url": fake.base_url}, llm_context(),
                             f"retry-test-{tmp_path.name}", return_state=True)
        calls = len(fake.message_requests())
    assert state.is_failed()
    with pytest.raises(ProposerTransient, match="overloaded"):
        state.result()
    assert calls == 4 * (FAST["max_retries"] + 1)  # each attempt: one request and the SDK's own retries


    def recorded_delays():
        # Task run states reach the server as events, a moment after the task returned: poll for the last ones.
        with get_client(sync_client=True) as client:
            states = client.read_task_run_states(state.state_details.task_run_id)
        if not any(s.is_failed() for s in states):
            return None
        return [round((s.state_details.scheduled_time - s.timestamp).total_seconds())
                for s in states if s.name == "AwaitingRetry"]

    delays = None
    for _ in range(60):
        delays = recorded_delays()
        if delays is not None and len(delays) >= 3:
            break
        time.sleep(0.5)
    assert delays == [10, 30, 90]
