"""What every proposer shares: the context it reads, the proposal it returns, and its errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from research.errors import InvalidProposal
from research.proposing.space import Change, Space, as_space, canonical_text, format_value, get_value
from research.proposing.validation import validate


class ProposerTransient(RuntimeError):
    """The proposer failed for a passing reason (rate limit, overload, 5xx, timeout, connection reset) after the
    SDK's own retries; the calling task may retry it. Its message is one sentence and never holds a secret."""

    usage: dict


@dataclass
class ProposalContext:
    """Everything a proposer reads, as plain data (picklable, no clients or paths).

    hparams: the resolved current block (nested dict). space: the search space. history: result rows in order,
    each a dict with at least exp, key, value, description, val_bpb, delta (val_bpb minus the best before it;
    negative is better), status (baseline|keep|discard|crash|skip) and error; `previous` (the value replaced) and
    `baseline_sha` are used when present. tried: `(key, canonical)` or `(base_sha, key, canonical)` entries
    already run. in_flight: changes already proposed in the same parallel round (Change objects or dicts with
    key and value); they are excluded and shown to the LLM. fit: see the field.
    """

    hparams: dict
    space: Space | Mapping[str, Any]
    history: list = field(default_factory=list)
    best_val_bpb: float | None = None
    baseline_val_bpb: float | None = None
    noise_sigma: float | None = None
    tried: set = field(default_factory=set)
    in_flight: list = field(default_factory=list)
    hardware: str = ""
    budget: str = ""
    seq_len: int | None = None
    seed: int = 0
    keep_margin: float | None = None      # val_bpb a first paired run must gain to be kept at once (the decide rule)
    base_sha: str | None = None            # the run-repo commit the next experiment starts from
    # training.fit.FitCheck of the device the block trains on (None: no prediction): offline proposers propose
    # only blocks it predicts to fit, Claude's prompt shows the block's headroom (research/proposing/headroom.py)
    fit: Any = None

    def space_obj(self) -> Space:
        return as_space(self.space)

    def excluded(self) -> set[tuple]:
        """The tried entries plus the in-flight changes, in the form research.proposing.validation.validate takes."""
        space = self.space_obj()
        out = set(self.tried or ())
        for item in self.in_flight or ():
            key, value = in_flight_pair(item)
            if key in space:
                try:
                    out.add((key, canonical_text(space[key], value)))
                except (TypeError, ValueError):
                    continue
        return out


def in_flight_pair(item: Any) -> tuple[str, Any]:
    if isinstance(item, Change):
        return item.key, item.value
    if isinstance(item, Mapping):
        return item.get("key"), item.get("value")
    key, value = item
    return key, value


@dataclass
class Proposal:
    """A validated change and what it cost to get it."""

    change: Change
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""
    rejected_reasons: list = field(default_factory=list)
    proposer: str = ""


USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd")


def empty_usage() -> dict:
    return {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0}


def attach_usage(error: Exception, *, attempts: int, usage: Mapping[str, Any], model: str,
                 reasons: Iterable[str] = (), proposer: str = "") -> Exception:
    """Put attempts, token usage, cost and the rejected reasons on an exception, so the loop can record them."""
    error.attempts = attempts                      # type: ignore[attr-defined]
    error.usage = dict(usage)                      # type: ignore[attr-defined]
    for name in USAGE_FIELDS:
        setattr(error, name, usage.get(name, 0))
    error.model = model                            # type: ignore[attr-defined]
    error.rejected_reasons = list(reasons)         # type: ignore[attr-defined]
    error.proposer = proposer                      # type: ignore[attr-defined]
    return error


def exhausted(reasons: list[str], *, attempts: int, usage: Mapping[str, Any] | None = None, model: str = "",
              proposer: str = "") -> InvalidProposal:
    """The InvalidProposal raised when every attempt failed validation: the last reason, with usage attached."""
    last = reasons[-1] if reasons else "The proposer found no valid change."
    return attach_usage(InvalidProposal(last), attempts=attempts, usage=usage or empty_usage(), model=model,
                        reasons=reasons, proposer=proposer)  # type: ignore[return-value]


def first_valid_change(candidates: Iterable[tuple[str, Any, str]], context: ProposalContext, proposer: str,
                       give_up: str) -> Proposal:
    """The first candidate `(key, value, reasoning)` that research.proposing.validation.validate accepts, as a Proposal of an
    offline proposer (no tokens). When none is valid, raises `exhausted` with up to five refusals and `give_up`."""
    space = context.space_obj()
    excluded = context.excluded()
    reasons: list[str] = []
    for key, value, reasoning in candidates:
        param = space[key]
        try:
            current = get_value(context.hparams, key)
        except KeyError:
            continue
        proposal = {"key": key, "value": value, "reasoning": reasoning,
                    "description": f"{key} {format_value(param, current)} -> {format_value(param, value)}"}
        try:
            change = validate(proposal, context.hparams, space, excluded, context.seq_len, base_sha=context.base_sha)
            refuse_unfit(change, context)
        except InvalidProposal as err:
            if len(reasons) < 5:
                reasons.append(str(err))
            continue
        return Proposal(change=change, attempts=1, model=proposer, proposer=proposer)
    raise exhausted(reasons + [give_up], attempts=1, model=proposer, proposer=proposer)


def refuse_unfit(change: Change, context: ProposalContext) -> None:
    """InvalidProposal when the context's fit check predicts the changed block not to fit the device as it is."""
    if context.fit is None:
        return
    from research.proposing.space import apply_change

    block = apply_change(context.hparams, change)
    if not context.fit.fits(block):
        raise InvalidProposal(f"{change.text} would not fit the device: {context.fit.predict(block).sentence()}.")


class Proposer:
    """Base class: `propose(context) -> Proposal`, raising InvalidProposal, ProposerTransient or ProposerFatal."""

    name = "base"

    def propose(self, context: ProposalContext) -> Proposal:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
