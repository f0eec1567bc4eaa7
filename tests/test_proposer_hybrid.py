"""proposer=hybrid through the real anthropic SDK against tests/fake_anthropic.py: TPE's proposal and its good
changes reach Claude's prompt; following, overriding and invalid answers are recorded as such; without a key TPE
proposes alone."""
from __future__ import annotations

import pytest
import yaml

from common.paths import PROJECT_ROOT
from research.proposing.proposers import ProposalContext, make_proposer
from research.proposing.proposers.tpe import TPEProposer
from research.proposing.space import load_space

try:
    from tests.fake_anthropic import FakeAnthropic, text_answer, tool_answer
except ImportError:  # tests/ on sys.path instead of the project root
    from fake_anthropic import FakeAnthropic, text_answer, tool_answer  # type: ignore

SPACE = load_space(PROJECT_ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((PROJECT_ROOT / "conf/hparams/default.yaml").read_text())
HISTORY = [{"exp": 0, "status": "baseline", "val_bpb": 1.0, "seed": HPARAMS.get("seed")},
           {"exp": 1, "key": "optim.embedding_lr", "value": 0.45, "status": "keep", "delta": -0.004,
            "val_bpb": 0.996},
           {"exp": 2, "key": "optim.matrix_lr", "value": 0.3, "status": "crash", "val_bpb": None}]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-hybrid")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with FakeAnthropic() as server:
        yield server


def hybrid(base_url: str | None):
    from flows.compose import compose

    cfg = compose(["proposer=hybrid"])["proposer"]  # the shipped file, both halves composed into it
    cfg["claude"].update({"base_url": base_url, "max_retries": 0, "timeout": 5.0})
    return make_proposer(cfg)


def context() -> ProposalContext:
    return ProposalContext(hparams=HPARAMS, space=SPACE, history=HISTORY, seq_len=2048, seed=4, noise_sigma=0.002)


def tpe_choice():
    return TPEProposer({"name": "tpe"}).propose(context()).change


def test_claude_reads_tpes_proposal_and_following_it_is_recorded(fake):
    ours = tpe_choice()
    fake.push(tool_answer({"key": ours.key, "value": ours.value, "description": "as TPE", "reasoning": "agree"}))
    result = hybrid(fake.base_url).propose(context())
    assert (result.change.key, result.change.value) == (ours.key, ours.value)
    assert result.proposer == "hybrid: followed TPE"
    prompt = fake.message_requests()[0]["messages"][0]["content"][0]["text"]
    assert f"TPE proposes: {ours.key}=" in prompt
    assert "optim.embedding_lr=0.45 (paired gain -0.004)" in prompt  # the good change TPE is fitted on
    assert "optim.matrix_lr=0.3 (paired gain" not in prompt  # a crash is never shown as a good change


def test_an_override_is_claudes_change_and_recorded_as_an_override(fake):
    ours = tpe_choice()
    other = ("schedule.warmdown_frac", 0.55) if ours.key != "schedule.warmdown_frac" else ("optim.x0_lr", 0.3)
    fake.push(tool_answer({"key": other[0], "value": other[1], "description": "mine", "reasoning": "longer decay"}))
    result = hybrid(fake.base_url).propose(context())
    assert (result.change.key, result.change.value) == other
    assert result.proposer == "hybrid: overrode TPE"


def test_invalid_answers_fall_back_to_tpes_proposal_with_claudes_cost(fake):
    ours = tpe_choice()
    fake.push(text_answer(usage={"input_tokens": 50, "output_tokens": 5}),
              text_answer(usage={"input_tokens": 60, "output_tokens": 5}),
              text_answer(usage={"input_tokens": 70, "output_tokens": 5}))
    result = hybrid(fake.base_url).propose(context())
    assert (result.change.key, result.change.value) == (ours.key, ours.value)
    assert result.proposer == "hybrid: TPE alone (Claude's answers were invalid)"
    assert result.input_tokens == 180 and len(result.rejected_reasons) == 3  # the calls made are still paid for


def test_without_a_key_tpe_proposes_alone(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    ours = tpe_choice()
    result = hybrid(None).propose(context())
    assert (result.change.key, result.change.value) == (ours.key, ours.value)
    assert result.proposer.startswith("hybrid: TPE alone (") and "ANTHROPIC_API_KEY" in result.proposer
