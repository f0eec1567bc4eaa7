"""Every rule proposal validation enforces is the model's and trainer's own (models/hparams.py): a block the
validator accepts builds a model and splits its batch, and a block it refuses fails there with the same sentence."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from models.hparams import BLOCK_RULES, BlockError, GPTConfig, check_block, grad_accum_steps
from research.errors import InvalidProposal
from research.proposing.space import apply_change, load_space
from research.proposing.validation import validate
from tests.training_helpers import make_experiment
from training.run_config import METRICS_FILE

ROOT = Path(__file__).resolve().parents[1]
SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
SEQ_LEN = 256


def proposal(key, value):
    return {"key": key, "value": value, "description": "a change", "reasoning": "because"}


def trainer_accepts(block: dict, seq_len: int) -> str | None:
    """What the training side says about a block: None when it builds, else its error sentence."""
    try:
        GPTConfig.from_hparams(block["model"], vocab_size=512, seq_len=seq_len)
        grad_accum_steps(block["batch"]["total_batch_tokens"], block["batch"]["device_batch_size"], seq_len)
        check_block(block, seq_len)
    except BlockError as exc:
        return str(exc)
    return None


def test_the_space_names_every_rule_of_the_model():
    # A rule the model has but the space does not name would let the validator pass blocks that crash.
    assert set(SPACE.constraints) == set(BLOCK_RULES)


@pytest.mark.parametrize("key,value", [("model.kv_head_ratio", 8), ("batch.device_batch_size", 96),
                                       ("schedule.warmup_frac", 0.5), ("model.depth", 5)])
def test_a_refused_change_fails_in_the_trainer_with_the_same_sentence(key, value):
    block = copy.deepcopy(HPARAMS)
    block["model"]["kv_head_ratio"] = 2  # depth 5 then gives 3 heads, which 2 does not divide
    block["schedule"]["warmdown_frac"] = 0.6
    block["batch"].update(total_batch_tokens=16384, device_batch_size=16)
    with pytest.raises(InvalidProposal) as refused:
        validate(proposal(key, value), block, SPACE, set(), SEQ_LEN)
    changed = copy.deepcopy(block)
    set_key(changed, key, value)
    assert trainer_accepts(changed, SEQ_LEN) == str(refused.value)


RULE_KEYS = ("model.depth", "model.aspect_ratio", "model.head_dim", "model.kv_head_ratio", "model.window_pattern",
             "batch.device_batch_size", "batch.total_batch_tokens", "schedule.warmup_frac", "schedule.warmdown_frac")


def within_the_space(key: str):
    """Values the space's own bounds allow, so that every refusal left is a cross-key rule's."""
    param = SPACE[key]
    if param.type == "int":
        return st.integers(int(param.min), int(param.max))
    if param.type == "float":
        return st.floats(float(param.min), float(param.max))
    if param.type == "choice":
        return st.sampled_from(list(param.choices))
    return st.text("SL", min_size=1, max_size=8)


BLOCK_KEYS = st.sampled_from([(key, within_the_space(key)) for key in RULE_KEYS])
KEY_VALUE = BLOCK_KEYS.flatmap(lambda kv: st.tuples(st.just(kv[0]), kv[1]))


def set_key(block: dict, key: str, value) -> None:
    section, name = key.split(".")
    block[section][name] = value


@settings(max_examples=300, deadline=None)
@given(st.lists(KEY_VALUE, max_size=4), KEY_VALUE, st.sampled_from([128, 256, 2048]))
def test_the_validator_accepts_exactly_what_the_trainer_builds(base_changes, key_value, seq_len):
    key, value = key_value
    block = copy.deepcopy(HPARAMS)
    for base_key, base_value in base_changes:  # any base, trainable or not: the rule judges the changed block
        set_key(block, base_key, base_value)
    try:
        change = validate(proposal(key, value), block, SPACE, set(), seq_len)
    except InvalidProposal as exc:
        if "propose a different value" in str(exc):
            return  # the same value as the base: nothing to compare
        set_key(block, key, value)
        assert trainer_accepts(block, seq_len) == str(exc)
        return
    assert trainer_accepts(apply_change(block, change), seq_len) is None


def test_the_trainer_refuses_a_schedule_the_validator_refuses(tmp_path, tiny_dataset):
    # The schedule rule used to live in the validator only: a hand-written block could train with it broken.
    exp_dir = make_experiment(tmp_path, tiny_dataset, ["hparams.schedule.warmup_frac=0.6",
                                                       "hparams.schedule.warmdown_frac=0.6"])
    proc = subprocess.run([sys.executable, "-m", "training.entry", str(exp_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    metrics = json.loads((exp_dir / METRICS_FILE).read_text())
    assert metrics["kind"] == "config" and "must not exceed 1" in metrics["reason"]
