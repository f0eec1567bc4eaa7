"""The Claude proposer through the real anthropic SDK against tests/fake_anthropic.py (no network)."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import yaml

from research.errors import InvalidProposal, ProposerFatal
from research.proposing.proposers import ProposalContext, ProposerTransient, make_proposer
from research.proposing.proposers.claude import ClaudeProposer, cost_usd
from research.proposing.space import load_space
try:
    from tests.fake_anthropic import (FakeAnthropic, billing_error, connection_reset, forbidden, max_tokens_stop,
                                      overloaded, rate_limited, raw, refusal, server_error, slow, text_answer,
                                      tool_answer, tool_answers, unauthorized)
except ImportError:  # tests/ on sys.path instead of the project root
    from fake_anthropic import (FakeAnthropic, billing_error, connection_reset, forbidden,  # type: ignore
                                max_tokens_stop, overloaded, rate_limited, raw, refusal, server_error, slow,
                                text_answer, tool_answer, tool_answers, unauthorized)

ROOT = Path(__file__).resolve().parents[1]
SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
CFG = yaml.safe_load((ROOT / "conf/proposer/claude.yaml").read_text())
SECRET = "sk-ant-test-SECRET-0123456789"
GOOD = {"key": "optim.matrix_lr", "value": 0.05, "description": "raise the Muon LR", "reasoning": "underfit"}


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with FakeAnthropic() as server:
        yield server


def proposer(fake, **overrides):
    return make_proposer({**CFG, "base_url": fake.base_url, "max_retries": 2, "timeout": 5.0, **overrides})


def context(**kw):
    return ProposalContext(hparams=HPARAMS, space=SPACE, seq_len=2048, seed=0, noise_sigma=0.002,
                           best_val_bpb=1.0, baseline_val_bpb=1.0, hardware="cuda, NVIDIA H100", budget="300 s",
                           **kw)


def test_good_tool_answer(fake):
    fake.push(tool_answer(GOOD, usage={"input_tokens": 1000, "output_tokens": 100,
                                       "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 0}))
    result = proposer(fake).propose(context())
    assert result.change.override == "hparams.optim.matrix_lr=0.05"
    assert result.attempts == 1 and result.rejected_reasons == []
    assert (result.input_tokens, result.output_tokens, result.cache_write_tokens, result.cache_read_tokens) == (
        1000, 100, 2000, 0)
    assert result.cost_usd == pytest.approx((1000 * 3.0 + 100 * 15.0 + 2000 * 3.75) / 1e6)
    assert result.model == CFG["model"] and result.proposer == "claude"
    body = fake.message_requests()[0]
    assert body["model"] == CFG["model"]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "Search space" in body["system"][0]["text"]
    assert body["tool_choice"]["type"] == "tool" and body["tool_choice"]["name"] == "propose_change"
    schema = body["tools"][0]["input_schema"]
    assert schema["properties"]["key"]["enum"] == SPACE.keys
    assert sorted(schema["required"]) == ["description", "key", "reasoning", "value"]
    assert "## Current block" in body["messages"][0]["content"][0]["text"]


def test_malformed_then_good_sends_the_reason_back(fake):
    fake.push(text_answer(usage={"input_tokens": 10, "output_tokens": 5}),
              tool_answer({**GOOD, "value": 7.0}, usage={"input_tokens": 20, "output_tokens": 6,
                                                         "cache_read_input_tokens": 300}),
              tool_answer(GOOD, usage={"input_tokens": 30, "output_tokens": 7, "cache_read_input_tokens": 300}))
    result = proposer(fake).propose(context())
    assert result.change.value == 0.05
    assert result.attempts == 3
    assert len(result.rejected_reasons) == 2
    assert "no propose_change tool call" in result.rejected_reasons[0]
    assert "must lie in" in result.rejected_reasons[1]
    assert (result.input_tokens, result.output_tokens, result.cache_read_tokens) == (60, 18, 600)
    assert result.cost_usd == pytest.approx((60 * 3.0 + 18 * 15.0 + 600 * 0.30) / 1e6)
    bodies = fake.message_requests()
    # 2nd request: the text-only answer was echoed and a plain text reason followed
    assert bodies[1]["messages"][-1]["role"] == "user"
    assert "no propose_change tool call" in str(bodies[1]["messages"][-1]["content"])
    # 3rd request: the invalid tool call answered by a tool_result with is_error and the reason
    assistant, user = bodies[2]["messages"][-2], bodies[2]["messages"][-1]
    assert assistant["role"] == "assistant" and assistant["content"][0]["type"] == "tool_use"
    result_block = user["content"][0]
    assert result_block["type"] == "tool_result" and result_block["is_error"] is True
    assert result_block["tool_use_id"] == assistant["content"][0]["id"]
    assert "must lie in" in result_block["content"]


@pytest.mark.parametrize("bad", [
    refusal(), max_tokens_stop(GOOD), tool_answers([GOOD, {**GOOD, "value": 0.06}]), tool_answer("not an object"),
    tool_answer(GOOD, name="other_tool"), raw(200, "not json at all"),
])
def test_malformed_answers_count_as_attempts(fake, bad):
    fake.push(bad, tool_answer(GOOD))
    result = proposer(fake).propose(context())
    assert result.attempts == 2 and len(result.rejected_reasons) == 1
    assert result.change.value == 0.05


def test_every_attempt_invalid_raises_invalid_proposal_with_usage(fake):
    fake.push(*[tool_answer({**GOOD, "value": 0.04}, usage={"input_tokens": 10, "output_tokens": 1})] * 3)
    with pytest.raises(InvalidProposal) as info:
        proposer(fake, max_attempts=3).propose(context())
    err = info.value
    assert "already 0.04" in str(err)
    assert err.attempts == 3 and len(err.rejected_reasons) == 3
    assert err.input_tokens == 30 and err.output_tokens == 3 and err.cost_usd > 0
    assert len(fake.message_requests()) == 3


def test_in_flight_and_tried_are_excluded(fake):
    fake.push(tool_answer(GOOD), tool_answer({**GOOD, "value": 0.06}))
    result = proposer(fake).propose(context(in_flight=[{"key": "optim.matrix_lr", "value": 0.05}]))
    assert result.change.value == 0.06
    assert "already tried" in result.rejected_reasons[0]
    assert "optim.matrix_lr=0.05" in fake.message_requests()[0]["messages"][0]["content"][0]["text"]


def test_rate_limit_with_retry_after_then_success(fake):
    fake.push(rate_limited(retry_after=0.01), tool_answer(GOOD))
    result = proposer(fake).propose(context())
    assert result.change.value == 0.05
    assert len(fake.requests) == 2


@pytest.mark.parametrize("failure,words", [
    (lambda: server_error(retry_after=0.01), "status 500"), (lambda: overloaded(retry_after=0.01), "overloaded (529"), (lambda: rate_limited(0.01), "rate-limiting"),
    (connection_reset, "connect"),
])
def test_persistent_transient_errors_raise_proposer_transient(fake, failure, words):
    fake.push(*[failure() for _ in range(3)])
    with pytest.raises(ProposerTransient) as info:
        proposer(fake, max_retries=2).propose(context())
    assert words in str(info.value)
    assert len(fake.requests) == 3  # 1 + max_retries, all by the SDK
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert isinstance(info.value, RuntimeError)


def test_timeout_raises_proposer_transient(fake):
    fake.push(slow(3.0), slow(3.0))
    with pytest.raises(ProposerTransient, match="did not answer within 0.3 s"):
        proposer(fake, max_retries=1, timeout=0.3).propose(context())


@pytest.mark.parametrize("failure,words", [
    (unauthorized, "rejected the key in ANTHROPIC_API_KEY (401)"),
    (forbidden, "no permission"),
    (billing_error, "out of credit"),
    (lambda: billing_error(402), "out of credit"),
])
def test_fatal_errors_are_one_sentence_without_the_key(fake, failure, words, caplog):
    caplog.set_level(logging.DEBUG)
    fake.push(failure())
    p = proposer(fake)
    with pytest.raises(ProposerFatal) as info:
        p.propose(context())
    err = info.value
    assert words in str(err) and "proposer=local" in str(err)
    assert len(fake.requests) == 1  # not retried
    for text in (str(err), repr(err), repr(p), repr(vars(err)), caplog.text):
        assert SECRET not in text
    assert SECRET.encode() not in pickle.dumps(err)
    assert err.__cause__ is None and err.__context__ is None


def test_missing_key_is_fatal(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProposerFatal, match=r"^ANTHROPIC_API_KEY is not set; export it or run with proposer=local\.$"):
        make_proposer(CFG)


def test_the_key_is_sent_only_as_a_header(fake):
    fake.push(tool_answer(GOOD))
    proposer(fake).propose(context())
    request = fake.requests[0]
    assert SECRET in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
    assert SECRET not in str(request.body)


def test_cost_table():
    assert cost_usd({"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.3},
                    {"input_tokens": 1_000_000, "output_tokens": 0}) == pytest.approx(3.0)
    assert cost_usd({}, {"input_tokens": 10}) == 0.0


def test_unknown_model_costs_nothing(fake):
    fake.push(tool_answer(GOOD))
    result = proposer(fake, model="local-llama").propose(context())
    assert result.cost_usd == 0.0 and result.input_tokens == 100
    assert isinstance(make_proposer({**CFG, "base_url": fake.base_url}), ClaudeProposer)
