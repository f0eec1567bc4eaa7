"""The search space (conf/space.yaml) and the validation of a proposal against it.

A proposal is data: a dict with exactly the fields `key`, `value`, `description`, `reasoning`. `validate` turns it
into a `Change` or raises `InvalidProposal` with one sentence the proposer can act on. Nothing in a proposal is
ever executed: values are coerced by the type the space declares (no eval/exec, no YAML parsing of the value),
and the resulting Hydra override is parsed with Hydra's own override grammar and must come out as a plain
`hparams.<key>=<value>` change with exactly the value we coerced.

Override form: `Change.override` is `hparams.<key>=<value>`, the form that applies to the composed top-level
config (conf/config.yaml puts the block under `hparams`). `Change.text` is the short `<key>=<value>` form used in
results rows and prompts.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from models.hparams import BLOCK_RULES, BlockError, check_block
from research.errors import InvalidProposal

PROPOSAL_FIELDS = ("key", "value", "description", "reasoning")
TYPES = ("int", "float", "bool", "choice", "str-pattern")
OVERRIDE_PREFIX = "hparams."
MAX_STRING_VALUE = 64          # longest string value a proposal may carry
MAX_DESCRIPTION = 200          # results rows stay readable; longer descriptions are cut
MAX_REASONING = 2000
MAX_ABS_INT = 2**53            # larger ints are not numbers any hyperparameter needs
FLOAT_DIGITS = 6               # significant digits a float value keeps (0.0400000001 is 0.04)

_KEY_RE = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+")
# Characters a string value may contain at all, before its own pattern is checked: no quotes, escapes,
# whitespace, interpolation, sweep or grammar characters.
_SAFE_STRING_RE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Param:
    """One key of the search space."""

    key: str
    type: str
    description: str
    min: float | int | None = None
    max: float | int | None = None
    log: bool = False
    choices: tuple = ()
    pattern: str | None = None
    max_len: int = MAX_STRING_VALUE

    def bounds_text(self) -> str:
        if self.type in ("int", "float"):
            return f"{self.type} in [{format_value(self, self.min)}, {format_value(self, self.max)}]" + (
                ", log scale" if self.log else ""
            )
        if self.type == "bool":
            return "bool (true | false)"
        if self.type == "choice":
            return "one of " + " | ".join(format_value(self, c) for c in self.choices)
        return f"string matching {self.pattern} (at most {self.max_len} chars)"


@dataclass(frozen=True)
class Space:
    """The loaded search space: `params` by dotted key (in file order) and the named constraints."""

    params: Mapping[str, Param]
    constraints: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return list(self.params)

    def __contains__(self, key: object) -> bool:
        return key in self.params

    def __getitem__(self, key: str) -> Param:
        return self.params[key]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Space":
        if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping):
            raise ValueError("The search space needs a `params` mapping; see conf/space.yaml.")
        params: dict[str, Param] = {}
        for key, spec in data["params"].items():
            params[key] = _param_from_spec(key, spec)
        constraints = dict(data.get("constraints") or {})
        for name in constraints:
            if name not in BLOCK_RULES:
                raise ValueError(
                    f"conf/space.yaml names an unknown constraint {name!r}; known: {', '.join(BLOCK_RULES)}."
                )
        return cls(params=params, constraints=constraints)


def _param_from_spec(key: str, spec: Any) -> Param:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key.split(".")[0] == "hydra":
        raise ValueError(f"Search-space key {key!r} is not a plain dotted name like model.depth.")
    if key == "seed":
        raise ValueError("`seed` must not be in the search space: a seed change is noise.")
    if not isinstance(spec, Mapping) or spec.get("type") not in TYPES:
        raise ValueError(f"Search-space key {key} needs a type among {', '.join(TYPES)}.")
    kind = spec["type"]
    description = str(spec.get("description", "")).strip()
    if kind in ("int", "float"):
        lo, hi = spec.get("min"), spec.get("max")
        if lo is None or hi is None or not lo <= hi:
            raise ValueError(f"Search-space key {key} needs min <= max.")
        if kind == "int":
            lo, hi = int(lo), int(hi)
        else:
            lo, hi = float(lo), float(hi)
        log = bool(spec.get("log", False))
        if log and lo <= 0:
            raise ValueError(f"Search-space key {key} is log-scaled, so its min must be positive.")
        return Param(key, kind, description, min=lo, max=hi, log=log)
    if kind == "choice":
        choices = tuple(spec.get("choices") or ())
        if not choices:
            raise ValueError(f"Search-space key {key} needs a non-empty choices list.")
        return Param(key, kind, description, choices=choices)
    if kind == "str-pattern":
        pattern = spec.get("pattern")
        if not pattern:
            raise ValueError(f"Search-space key {key} needs a pattern.")
        re.compile(pattern)
        max_len = int(spec.get("max_len", MAX_STRING_VALUE))
        return Param(key, kind, description, pattern=str(pattern), max_len=min(max_len, MAX_STRING_VALUE))
    return Param(key, kind, description)


def load_space(path: str | Path = "conf/space.yaml") -> Space:
    """Read conf/space.yaml (plain YAML, safe loader) into a Space."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        return Space.from_dict(yaml.safe_load(handle))


def as_space(space: Space | Mapping[str, Any]) -> Space:
    return space if isinstance(space, Space) else Space.from_dict(space)


@dataclass(frozen=True)
class Change:
    """A validated change of one hyperparameter.

    `override` is the Hydra override for the composed config (`hparams.<key>=<value>`); `text` is `<key>=<value>`;
    `canonical` is the value as text (the form used for duplicate detection); `previous` the value it replaces.
    """

    key: str
    value: Any
    override: str
    description: str
    reasoning: str
    previous: Any = None

    @property
    def canonical(self) -> str:
        return self.override.split("=", 1)[1]

    @property
    def text(self) -> str:
        return f"{self.key}={self.canonical}"


# ----------------------------------------------------------------------------------------------- values


def format_value(param: Param, value: Any) -> str:
    """The canonical text of an already-coerced value, as it appears in the override."""
    if param.type == "bool" or isinstance(value, bool):
        return "true" if value else "false"
    if param.type == "float" or isinstance(value, float):
        text = format(float(value), f".{FLOAT_DIGITS}g")
        if not any(c in text for c in ".en"):   # keep it a float for Hydra: 10000 -> 10000.0
            text += ".0"
        return text
    return str(value)


def _show(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of an untrusted value for an error message."""
    text = repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def coerce_value(param: Param, value: Any) -> Any:
    """Check the JSON value against the declared type and return it in canonical Python form, or raise."""
    key = param.key
    if param.type == "bool":
        if not isinstance(value, bool):
            raise InvalidProposal(f"{key} takes a JSON boolean true or false, not {_show(value)}.")
        return value
    if param.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidProposal(f"{key} takes a JSON integer such as {param.min}, not {_show(value)}.")
        if abs(value) > MAX_ABS_INT:
            raise InvalidProposal(f"{key} must lie in [{param.min}, {param.max}]; {_show(value)} is far outside.")
        return int(value)
    if param.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidProposal(f"{key} takes a JSON number such as {format_value(param, param.min)}, not {_show(value)}.")
        if isinstance(value, int) and abs(value) > MAX_ABS_INT:
            raise InvalidProposal(f"{key} must lie in [{param.min}, {param.max}]; {_show(value)} is far outside.")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidProposal(f"{key} must be a finite number, not {_show(value)}.")
        return float(format_value(param, number))
    if param.type == "choice":
        for choice in param.choices:
            # Type-exact: True is not 1, "4" is not 4, 4.0 is not 4.
            if type(choice) is type(value) and choice == value:
                return choice
        raise InvalidProposal(
            f"{key} must be one of {', '.join(format_value(param, c) for c in param.choices)}, not {_show(value)}."
        )
    # str-pattern
    if not isinstance(value, str):
        raise InvalidProposal(f"{key} takes a string matching {param.pattern}, not {_show(value)}.")
    _check_plain_string(key, value, param.max_len)
    if not re.fullmatch(param.pattern or "", value):
        raise InvalidProposal(f"{key} must match {param.pattern}, and {_show(value)} does not.")
    return value


def _check_plain_string(key: str, value: str, max_len: int) -> None:
    if "${" in value:
        raise InvalidProposal(f"{key} must be a literal value; interpolations like ${{...}} are not allowed.")
    if len(value) > max_len:
        raise InvalidProposal(f"{key} takes at most {max_len} characters; the value had {len(value)}.")
    if not value.isascii() or not _SAFE_STRING_RE.fullmatch(value):
        raise InvalidProposal(
            f"{key} must be a plain ASCII word (letters, digits, _ . -) without quotes, spaces, escapes or symbols."
        )


def _in_bounds(param: Param, value: Any) -> None:
    if param.type in ("int", "float") and not param.min <= value <= param.max:
        raise InvalidProposal(
            f"{param.key} must lie in [{format_value(param, param.min)}, {format_value(param, param.max)}]; "
            f"{format_value(param, value)} is outside."
        )


def same_value(param: Param, a: Any, b: Any) -> bool:
    if param.type == "float" and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    return type(a) is type(b) and a == b


def canonical_text(param: Param, value: Any) -> str:
    """The canonical text of a value from a trusted source (the ledger: strings allowed), for duplicate checks."""
    if isinstance(value, str) and param.type != "str-pattern":
        text = value.strip()
        if param.type == "bool":
            value = text.lower() == "true"
        elif param.type == "int":
            value = int(float(text))
        elif param.type == "float":
            value = float(text)
        else:
            for choice in param.choices:
                if format_value(param, choice) == text:
                    value = choice
                    break
            else:
                value = text
    if param.type == "float":
        return format_value(param, float(value))
    return format_value(param, value)


# ----------------------------------------------------------------------------------------------- hparams


def get_value(hparams: Mapping[str, Any], key: str) -> Any:
    node: Any = hparams
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def apply_change(hparams: Mapping[str, Any], change: Change) -> dict:
    """A deep copy of the nested hyperparameter block with the change applied (the input is not touched)."""
    new = copy.deepcopy(dict(hparams))
    node = new
    parts = change.key.split(".")
    for part in parts[:-1]:
        node[part] = dict(node[part])
        node = node[part]
    if parts[-1] not in node:
        raise KeyError(change.key)
    node[parts[-1]] = copy.deepcopy(change.value)
    return new


def check_constraints(space: Space, hparams: Mapping[str, Any], seq_len: int | None) -> None:
    """Raise InvalidProposal if the (already changed) block breaks one of the space's named constraints: the
    model's and trainer's own rules (models/hparams.py), asked before the change costs a training."""
    try:
        check_block(hparams, seq_len, rules=space.constraints or ())
    except BlockError as exc:
        raise InvalidProposal(str(exc)) from None


# ----------------------------------------------------------------------------------------------- override


def check_override(override: str, key: str, value: Any) -> None:
    """Parse the override with Hydra's grammar and demand a plain CHANGE of exactly `hparams.<key>` to `value`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    bad = "The change must be a plain key=value override"
    if "${" in override or not override.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in override):
        raise InvalidProposal(f"{bad}: no interpolation, control or non-ASCII characters.")
    if override[:1] in "+~":
        raise InvalidProposal(f"{bad}: no +, ++ or ~ prefixes.")
    try:
        parsed = OverridesParser.create().parse_override(override)
    except Exception:
        raise InvalidProposal(f"{bad}; Hydra could not parse it as one.") from None
    if parsed.type != OverrideType.CHANGE:
        raise InvalidProposal(f"{bad}: no +, ++ or ~ prefixes.")
    if parsed.is_sweep_override():
        raise InvalidProposal(f"{bad}: one value, no sweeps, choice(), range() or glob().")
    if parsed.package is not None:
        raise InvalidProposal(f"{bad}: no @package.")
    target = parsed.key_or_group
    if target.split(".")[0] == "hydra" or target != OVERRIDE_PREFIX + key:
        raise InvalidProposal(f"{bad} of a search-space key; hydra.* and other keys cannot be changed.")
    parsed_value = parsed.value()
    if type(parsed_value) is not type(value) or parsed_value != value:
        raise InvalidProposal(f"{bad}; the value did not survive parsing unchanged.")


# ----------------------------------------------------------------------------------------------- validate


def _tried_contains(tried: Iterable[tuple] | None, key: str, canonical: str, base_sha: str | None) -> bool:
    if not tried:
        return False
    for entry in tried:
        if len(entry) == 2:
            if entry[0] == key and str(entry[1]) == canonical:
                return True
        elif len(entry) == 3:
            if entry[1] == key and str(entry[2]) == canonical and (base_sha is None or entry[0] == base_sha):
                return True
    return False


def _clean_text(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(
    proposal: Any,
    hparams: Mapping[str, Any],
    space: Space | Mapping[str, Any],
    tried: Iterable[tuple] | None = None,
    seq_len: int | None = None,
    *,
    base_sha: str | None = None,
) -> Change:
    """Validate a proposal `{key, value, description, reasoning}` against the space and the current block.

    hparams: the resolved, nested current block. tried: `(key, canonical)` pairs or `(base_sha, key, canonical)`
    triples (a triple counts when `base_sha` is None or equal to it). seq_len: train.seq_len, for the batch
    divisibility constraint (skipped when None). Returns a Change; raises InvalidProposal(one sentence).
    """
    space = as_space(space)
    if not isinstance(proposal, Mapping):
        raise InvalidProposal("The proposal must be a JSON object with key, value, description and reasoning.")
    names = set(proposal.keys())
    missing = [n for n in PROPOSAL_FIELDS if n not in names]
    extra = sorted(_show(n, 30) for n in names if n not in PROPOSAL_FIELDS)
    if missing:
        raise InvalidProposal(f"The proposal is missing {', '.join(missing)}; give exactly key, value, description, reasoning.")
    if extra:
        raise InvalidProposal(f"The proposal has extra fields {', '.join(extra)}; give exactly key, value, description, reasoning.")
    key = proposal["key"]
    if not isinstance(key, str):
        raise InvalidProposal("key must be a string naming one search-space key, e.g. optim.matrix_lr.")
    if key == "seed" or (key.isascii() and _KEY_RE.fullmatch(key) and key.split(".")[0] == "hydra"):
        raise InvalidProposal(f"{key} cannot be changed; use one of the search-space keys.")
    if not key.isascii() or not _KEY_RE.fullmatch(key):
        raise InvalidProposal(f"key {_show(key)} is not a plain dotted name; use one of the search-space keys.")
    if key not in space:
        raise InvalidProposal(f"{key} is not in the search space; use one of: {', '.join(space.keys)}.")
    for name in ("description", "reasoning"):
        if not isinstance(proposal[name], str):
            raise InvalidProposal(f"{name} must be a string.")
    description = _clean_text(proposal["description"], MAX_DESCRIPTION)
    if not description:
        raise InvalidProposal("description must say in a few words what the change is.")
    reasoning = _clean_text(proposal["reasoning"], MAX_REASONING)
    param = space[key]
    value = coerce_value(param, proposal["value"])
    _in_bounds(param, value)
    try:
        current = get_value(hparams, key)
    except KeyError:
        raise InvalidProposal(f"{key} is not in the current hyperparameter block; use another search-space key.") from None
    if same_value(param, value, current):
        raise InvalidProposal(f"{key} is already {format_value(param, current)}; propose a different value.")
    canonical = format_value(param, value)
    if _tried_contains(tried, key, canonical, base_sha):
        raise InvalidProposal(f"{key}={canonical} was already tried from this base; propose something new.")
    override = f"{OVERRIDE_PREFIX}{key}={canonical}"
    check_override(override, key, value)
    change = Change(key=key, value=value, override=override, description=description, reasoning=reasoning,
                    previous=current)
    check_constraints(space, apply_change(hparams, change), seq_len)
    return change


def tried_from_history(rows: Iterable[Mapping[str, Any]], space: Space | Mapping[str, Any]) -> set[tuple]:
    """`(base_sha, key, canonical)` for every history row with a search-space key (rows from the ledger)."""
    space = as_space(space)
    out: set[tuple] = set()
    for row in rows:
        key, value = row.get("key"), row.get("value")
        if key not in space or value is None:
            continue
        try:
            out.add((row.get("baseline_sha"), key, canonical_text(space[key], value)))
        except (TypeError, ValueError):
            continue
    return out
