"""Validation of a proposal against the search space and the current block (research/proposing/space.py holds the space).

A proposal is data: a dict with exactly the fields `key`, `value`, `description`, `reasoning`. `validate` turns it
into a `Change` or raises `InvalidProposal` with one sentence the proposer can act on. Nothing in a proposal is
ever executed: values are coerced by the type the space declares (no eval/exec, no YAML parsing of the value),
the changed block must pass the model's own rules (models/hparams.py), and the resulting Hydra override is parsed
with Hydra's own grammar and must come out as a plain `hparams.<key>=<value>` change with exactly the value we
coerced.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from models.hparams import BlockError, check_block
from research.errors import InvalidProposal
from research.proposing.space import (KEY_PATTERN, OVERRIDE_PREFIX, Change, Space, apply_change, as_space,
                            check_bounds, coerce_value, format_value, get_value, same_value, shown)

PROPOSAL_FIELDS = ("key", "value", "description", "reasoning")
MAX_DESCRIPTION = 200          # results rows stay readable; longer descriptions are cut
MAX_REASONING = 2000


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
    extra = sorted(shown(n, 30) for n in names if n not in PROPOSAL_FIELDS)
    if missing:
        raise InvalidProposal(f"The proposal is missing {', '.join(missing)}; give exactly key, value, description, reasoning.")
    if extra:
        raise InvalidProposal(f"The proposal has extra fields {', '.join(extra)}; give exactly key, value, description, reasoning.")
    key = proposal["key"]
    if not isinstance(key, str):
        raise InvalidProposal("key must be a string naming one search-space key, e.g. optim.matrix_lr.")
    if key == "seed" or (key.isascii() and KEY_PATTERN.fullmatch(key) and key.split(".")[0] == "hydra"):
        raise InvalidProposal(f"{key} cannot be changed; use one of the search-space keys.")
    if not key.isascii() or not KEY_PATTERN.fullmatch(key):
        raise InvalidProposal(f"key {shown(key)} is not a plain dotted name; use one of the search-space keys.")
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
    check_bounds(param, value)
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

