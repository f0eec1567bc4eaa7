"""The search space (conf/space.yaml): its keys with their types and bounds, a value's canonical form, and a
change applied to the block. Validating a proposal against it is research/proposing/validation.py.

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
from typing import Any, Mapping

from models.hparams import BLOCK_RULES
from research.errors import InvalidProposal

TYPES = ("int", "float", "bool", "choice", "str-pattern")
OVERRIDE_PREFIX = "hparams."
MAX_STRING_VALUE = 64          # longest string value a proposal may carry
MAX_ABS_INT = 2**53            # larger ints are not numbers any hyperparameter needs
FLOAT_DIGITS = 6               # significant digits a float value keeps (0.0400000001 is 0.04)

KEY_PATTERN = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+")
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
    kinds: Mapping[str, str] = field(default_factory=dict)  # key -> its kind of change (the `kinds:` section)

    @property
    def keys(self) -> list[str]:
        return list(self.params)

    def __contains__(self, key: object) -> bool:
        return key in self.params

    def __getitem__(self, key: str) -> Param:
        return self.params[key]

    def kind_of(self, key: str | None) -> str | None:
        """The kind of a change of `key` (shape, attention, optimizer, ...): decisions learn a paired noise per kind."""
        return self.kinds.get(key) if key else None

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
        return cls(params=params, constraints=constraints, kinds=_kinds_by_key(data.get("kinds") or {}, params))


def _kinds_by_key(kinds: Mapping[str, Any], params: Mapping[str, Param]) -> dict[str, str]:
    """The `kinds:` section (kind -> keys) turned around; a key named twice or not at all is a mistake in the file."""
    by_key: dict[str, str] = {}
    for kind, keys in kinds.items():
        for key in keys or ():
            if key not in params:
                raise ValueError(f"conf/space.yaml kinds.{kind} names {key!r}, which is not in params.")
            if key in by_key:
                raise ValueError(f"conf/space.yaml puts {key} in two kinds ({by_key[key]} and {kind}); keep one.")
            by_key[key] = str(kind)
    missing = [key for key in params if key not in by_key] if kinds else []
    if missing:
        raise ValueError(f"conf/space.yaml kinds leaves out {', '.join(missing)}; put each key in one kind.")
    return by_key


def _param_from_spec(key: str, spec: Any) -> Param:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or key.split(".")[0] == "hydra":
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


def shown(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of an untrusted value for an error message."""
    text = repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def coerce_value(param: Param, value: Any) -> Any:
    """Check the JSON value against the declared type and return it in canonical Python form, or raise."""
    key = param.key
    if param.type == "bool":
        if not isinstance(value, bool):
            raise InvalidProposal(f"{key} takes a JSON boolean true or false, not {shown(value)}.")
        return value
    if param.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidProposal(f"{key} takes a JSON integer such as {param.min}, not {shown(value)}.")
        if abs(value) > MAX_ABS_INT:
            raise InvalidProposal(f"{key} must lie in [{param.min}, {param.max}]; {shown(value)} is far outside.")
        return int(value)
    if param.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidProposal(f"{key} takes a JSON number such as {format_value(param, param.min)}, not {shown(value)}.")
        if isinstance(value, int) and abs(value) > MAX_ABS_INT:
            raise InvalidProposal(f"{key} must lie in [{param.min}, {param.max}]; {shown(value)} is far outside.")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidProposal(f"{key} must be a finite number, not {shown(value)}.")
        return float(format_value(param, number))
    if param.type == "choice":
        for choice in param.choices:
            # Type-exact: True is not 1, "4" is not 4, 4.0 is not 4.
            if type(choice) is type(value) and choice == value:
                return choice
        raise InvalidProposal(
            f"{key} must be one of {', '.join(format_value(param, c) for c in param.choices)}, not {shown(value)}."
        )
    # str-pattern
    if not isinstance(value, str):
        raise InvalidProposal(f"{key} takes a string matching {param.pattern}, not {shown(value)}.")
    _check_plain_string(key, value, param.max_len)
    if not re.fullmatch(param.pattern or "", value):
        raise InvalidProposal(f"{key} must match {param.pattern}, and {shown(value)} does not.")
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


def check_bounds(param: Param, value: Any) -> None:
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
