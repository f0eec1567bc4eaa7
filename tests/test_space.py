"""Search space loading, proposal validation (good and bad), constraints, apply_change, and hostile inputs."""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from research.errors import InvalidProposal
from research.proposing.space import Change, Space, apply_change, format_value, get_value, load_space
from research.records.state import tried_changes
from research.proposing.validation import check_override, validate

ROOT = Path(__file__).resolve().parents[1]
SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
CPU = copy.deepcopy(HPARAMS)
CPU["model"].update(depth=4, aspect_ratio=32, head_dim=32)
CPU["batch"].update(total_batch_tokens=4096, device_batch_size=16)


def prop(key, value, description="a change", reasoning="because"):
    return {"key": key, "value": value, "description": description, "reasoning": reasoning}


def test_space_covers_the_block_but_not_seed():
    assert "seed" not in SPACE
    for key, param in SPACE.params.items():
        current = get_value(HPARAMS, key)  # every space key exists in the block
        if param.type in ("int", "float"):
            assert param.min <= current <= param.max, key
        assert param.description, key
    assert set(SPACE.constraints) == {"heads", "batch", "window_pattern", "schedule"}


def test_space_rejects_seed_and_unknown_constraints():
    with pytest.raises(ValueError):
        Space.from_dict({"params": {"seed": {"type": "int", "min": 0, "max": 1}}})
    with pytest.raises(ValueError):
        Space.from_dict({"params": {}, "constraints": {"eval_me": "x"}})


GOOD = [
    (prop("optim.matrix_lr", 0.05), "hparams.optim.matrix_lr=0.05", 0.05),
    (prop("optim.matrix_lr", 0.0400001), "hparams.optim.matrix_lr=0.0400001", 0.0400001),
    (prop("model.rope_base", 20000), "hparams.model.rope_base=20000.0", 20000.0),  # int accepted for a float
    (prop("model.rope_base", 1e6), "hparams.model.rope_base=1e+06", 1e6),
    (prop("model.depth", 10), "hparams.model.depth=10", 10),
    (prop("model.value_residual", False), "hparams.model.value_residual=false", False),
    (prop("model.activation", "swiglu"), "hparams.model.activation=swiglu", "swiglu"),
    (prop("model.head_dim", 64), "hparams.model.head_dim=64", 64),
    (prop("model.window_pattern", "SSL"), "hparams.model.window_pattern=SSL", "SSL"),
    (prop("batch.total_batch_tokens", 262144), "hparams.batch.total_batch_tokens=262144", 262144),
    (prop("schedule.warmdown_frac", 0.7), "hparams.schedule.warmdown_frac=0.7", 0.7),
]


@pytest.mark.parametrize("proposal,override,value", GOOD)
def test_good_proposals(proposal, override, value):
    change = validate(proposal, HPARAMS, SPACE, set(), 2048)
    assert isinstance(change, Change)
    assert change.override == override
    assert change.value == value and type(change.value) is type(value)
    assert change.text == override[len("hparams."):]
    assert change.previous == get_value(HPARAMS, proposal["key"])
    assert change.description == "a change" and change.reasoning == "because"


BAD = [
    ("not a dict", ["key=model.depth"], "JSON object"),
    ("missing field", {"key": "model.depth", "value": 3, "description": "x"}, "missing reasoning"),
    ("extra field", {**prop("model.depth", 3), "override": "x"}, "extra fields"),
    ("unknown key", prop("model.width", 3), "not in the search space"),
    ("seed", prop("seed", 3), "cannot be changed"),
    ("hydra key", prop("hydra.run.dir", "x"), "cannot be changed"),
    ("key with spaces", prop("model.depth ", 3), "not a plain dotted name"),
    ("key lookalike", prop("model.dеpth", 3), "not a plain dotted name"),  # Cyrillic e
    ("key with prefix", prop("+model.depth", 3), "not a plain dotted name"),
    ("key not str", prop(3, 3), "key must be a string"),
    ("string for int", prop("model.depth", "3"), "JSON integer"),
    ("float for int", prop("model.depth", 3.0), "JSON integer"),
    ("bool for int", prop("model.depth", True), "JSON integer"),
    ("bool for float", prop("optim.matrix_lr", True), "JSON number"),
    ("string for float", prop("optim.matrix_lr", "0.05"), "JSON number"),
    ("nan", prop("optim.matrix_lr", float("nan")), "finite"),
    ("inf", prop("optim.matrix_lr", float("inf")), "finite"),
    ("huge int", prop("model.depth", 10**30), "far outside"),
    ("int for bool", prop("model.qk_norm", 0), "JSON boolean"),
    ("string for bool", prop("model.qk_norm", "false"), "JSON boolean"),
    ("below min", prop("model.depth", 0), "must lie in"),
    ("above max", prop("optim.matrix_lr", 0.5), "must lie in"),
    ("not a choice", prop("model.activation", "tanh"), "must be one of"),
    ("choice wrong type", prop("model.head_dim", "64"), "must be one of"),
    ("choice bool", prop("model.kv_head_ratio", True), "must be one of"),
    ("same value", prop("model.depth", 8), "already 8"),
    ("same float", prop("optim.matrix_lr", 0.04), "already 0.04"),
    ("pattern chars", prop("model.window_pattern", "SSX"), "must match"),
    ("pattern too long", prop("model.window_pattern", "SSSSSSSSL"), "at most 8"),
    ("interpolation", prop("model.window_pattern", "${oc.env:HOME}"), "interpolations"),
    ("quotes", prop("model.activation", "'gelu'"), "must be one of"),
    ("pattern quotes", prop("model.window_pattern", "'SL'"), "plain ASCII word"),
    ("pattern newline", prop("model.window_pattern", "SL\nL"), "plain ASCII word"),
    ("heads", prop("model.kv_head_ratio", 8), "kv_head_ratio 8"),
    ("batch", prop("batch.device_batch_size", 96), "multiple of device_batch_size"),
    ("schedule", prop("schedule.warmup_frac", 0.5, ), None),  # 0.5 + 0.5 = 1.0 is allowed
    ("description not str", {**prop("model.depth", 3), "description": 3}, "description must be a string"),
    ("empty description", prop("model.depth", 3, description="  "), "description must say"),
]


@pytest.mark.parametrize("name,proposal,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_proposals(name, proposal, reason):
    if reason is None:  # allowed after all: the change comes back as asked
        change = validate(proposal, HPARAMS, SPACE, set(), 2048)
        assert (change.key, change.value) == (proposal["key"], proposal["value"])
        return
    with pytest.raises(InvalidProposal) as info:
        validate(proposal, HPARAMS, SPACE, set(), 2048)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message and message.endswith(".")


def test_schedule_constraint():
    h = copy.deepcopy(HPARAMS)
    h["schedule"]["warmup_frac"] = 0.3
    with pytest.raises(InvalidProposal, match="must not exceed 1"):
        validate(prop("schedule.warmdown_frac", 0.8), h, SPACE, set(), 2048)


def test_batch_constraint_uses_seq_len_and_is_skipped_without_it():
    with pytest.raises(InvalidProposal, match="16 \\* 256"):
        validate(prop("batch.total_batch_tokens", 6144), CPU, SPACE, set(), 256)
    validate(prop("batch.total_batch_tokens", 8192), CPU, SPACE, set(), 256)
    validate(prop("batch.total_batch_tokens", 6144), CPU, SPACE, set(), None)


def test_heads_constraint_rounds_width_up_to_head_dim():
    # depth 5 * aspect 64 = 320 -> rounded up to 384 = 3 heads of 128: kv_head_ratio 2 does not divide 3.
    h = copy.deepcopy(HPARAMS)
    h["model"]["kv_head_ratio"] = 2
    with pytest.raises(InvalidProposal, match="width 384 and 3 heads"):
        validate(prop("model.depth", 5), h, SPACE, set(), 2048)
    # depth 7 * 64 = 448 -> 512 = 4 heads: ratio 2 divides it
    assert validate(prop("model.depth", 7), h, SPACE, set(), 2048).value == 7


def test_tried_from_the_same_base_only():
    tried = {("sha1", "model.depth", "10"), ("optim.matrix_lr", "0.05")}
    with pytest.raises(InvalidProposal, match="already tried"):
        validate(prop("model.depth", 10), HPARAMS, SPACE, tried, 2048, base_sha="sha1")
    validate(prop("model.depth", 10), HPARAMS, SPACE, tried, 2048, base_sha="sha2")
    with pytest.raises(InvalidProposal, match="already tried"):
        validate(prop("optim.matrix_lr", 0.05), HPARAMS, SPACE, tried, 2048, base_sha="sha2")
    # tried entries from the ledger are strings; canonical text makes 0.050 and 0.05 the same
    rows = [{"key": "optim.matrix_lr", "value": "0.050", "baseline_sha": "s"}, {"key": "model.depth", "value": "12"}]
    assert tried_changes(rows, SPACE) == {("s", "optim.matrix_lr", "0.05"), (None, "model.depth", "12")}


def test_description_is_one_clean_line():
    change = validate(prop("model.depth", 10, description="deeper\nmodel\t\x00 now", reasoning="r" * 5000),
                      HPARAMS, SPACE, set(), 2048)
    assert change.description == "deeper model now"
    assert len(change.reasoning) <= 2000


def test_apply_change_is_pure():
    before = copy.deepcopy(HPARAMS)
    change = validate(prop("model.depth", 10), HPARAMS, SPACE, set(), 2048)
    after = apply_change(HPARAMS, change)
    assert HPARAMS == before
    assert after["model"]["depth"] == 10
    after["optim"]["matrix_lr"] = 1.0
    assert HPARAMS["optim"]["matrix_lr"] == 0.04


@pytest.mark.parametrize("override", [
    "+hparams.model.depth=3", "++hparams.model.depth=3", "~hparams.model.depth", "hparams.model.depth=1,2",
    "hparams.model.depth=range(1,3)", "hparams.model.depth=choice(1,2)", "hparams.model.depth=glob(*)",
    "hydra.run.dir=x", "hparams.model.depth=${oc.env:HOME}", "hparams.model.depth@pkg=3", "hparams.optim.x=3",
    "hparams.model.depth='3'", "hparams.model.depth=3\nx=1",
])
def test_check_override_rejects_non_plain(override):
    with pytest.raises(InvalidProposal):
        check_override(override, "model.depth", 3)


# ----------------------------------------------------------------------------------------------- hostile

HOSTILE_STRINGS = [
    "__import__('os').system('x')", "${oc.env:HOME}", "${oc.env:ANTHROPIC_API_KEY}", "+model.depth=3",
    "hydra.run.dir=x", "model.depth=1,2", "1,2", "range(1,10)", "choice(1,2)", "glob(*)", "~model.depth",
    "'SL'", '"SL"', "S\\L", "SL\n", "SL\x00", "ＳＬ", "SⅬ", "\u202eLS", "S L", "nan", "inf", "1e999", "3",
    "!!python/object/apply:os.system ['x']", "{a: 1}", "[1, 2]", "S" * 1000, "",
]
HOSTILE_KEYS = [
    "hydra.run.dir", "+model.depth", "~model.depth", "model.depth@pkg", "model.dеpth", "model.depth\n",
    "model..depth", "${x}", "seed", "model", "__class__.__init__", "model.depth,optim.matrix_lr", "",
]


def _eval_is_forbidden(*args, **kwargs):
    raise AssertionError("validate called eval/exec")


@settings(max_examples=300, deadline=None)
@given(
    key=st.one_of(st.sampled_from(list(SPACE.keys)), st.sampled_from(HOSTILE_KEYS), st.text(max_size=30)),
    value=st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.text(max_size=80),
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not math.isfinite(f)),
        st.integers(min_value=2**60, max_value=2**200),
        st.integers(max_value=-(2**60)),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.none(),
    ),
)
def test_hostile_values_never_validate(key, value):
    if isinstance(value, str) and re.fullmatch(r"[SL]{1,8}", value) and key == "model.window_pattern":
        return  # a genuinely valid pattern
    if isinstance(value, str) and key == "model.activation" and value in ("gelu", "swiglu"):
        return
    with mock.patch("builtins.eval", _eval_is_forbidden), mock.patch("builtins.exec", _eval_is_forbidden):
        with pytest.raises(InvalidProposal):
            validate(prop(key, value), HPARAMS, SPACE, set(), 2048)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(list(SPACE.keys)),
       value=st.one_of(st.integers(-10, 10**7), st.floats(-1e7, 1e7), st.booleans(), st.sampled_from(
           ["S", "SL", "LLL", "SSSSSSSL", "gelu", "swiglu", "relu2"])))
def test_whatever_validates_is_a_plain_override(key, value):
    try:
        change = validate(prop(key, value), HPARAMS, SPACE, set(), 2048)
    except InvalidProposal:
        return
    assert_plain_override(change, key)


# One accepted change of each value type, so the property above is not vacuous (everything rejected).
@pytest.mark.parametrize("key,value", [("model.depth", 4), ("optim.matrix_lr", 0.05), ("model.window_pattern", "SL"),
                                       ("model.activation", "gelu"), ("model.qk_norm", False)])
def test_accepted_changes_of_each_type_are_plain_overrides(key, value):
    assert_plain_override(validate(prop(key, value), HPARAMS, SPACE, set(), 2048), key)


def assert_plain_override(change, key):
    assert re.fullmatch(r"hparams\.[a-z0-9_.]+=[A-Za-z0-9_.+-]+", change.override)
    check_override(change.override, change.key, change.value)
    assert format_value(SPACE[key], change.value) == change.canonical
