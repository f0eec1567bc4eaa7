"""LLM faults through the fake Anthropic server: every scenario of bench/faults.py ends as expected.

Proposer level (tasks.propose.propose_change, what the propose task runs): retried and recovered, re-asked,
recorded as `skip`, handed to the task's retries (transient), or the run stopped with one sentence (fatal).
The whole-flow cases are in tests/test_reliability_run.py.
"""
from __future__ import annotations

import json
import sys
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
    from research.proposers import ProposerTransient

    assert _retry_transient(None, None, _State(ProposerTransient("x"))) is True
    assert _retry_transient(None, None, _State(ProposerFatal("x"))) is False
