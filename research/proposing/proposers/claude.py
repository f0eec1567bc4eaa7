"""The Claude proposer: one forced `propose_change` tool call per attempt, validated with research.proposing.validation.validate.

- The stable part of the prompt (role, rules, search space) is a system block with cache_control (prompt caching).
- An invalid or malformed answer is sent back (tool_result with is_error and the reason) and Claude answers
  again, at most `max_attempts` calls per proposal; then InvalidProposal(last reason) with the usage attached.
- Transient API trouble (429, 5xx, 529, timeouts, resets) is retried by the SDK (`max_retries`); if it persists,
  ProposerTransient. A bad key (401), no permission (403), no credit (billing) or an unknown model: ProposerFatal.
- The key is read only from ANTHROPIC_API_KEY and handed to the SDK; it never appears in a message, repr or log of
  ours, and SDK exceptions (whose request carries the key in a header) are not chained onto ours.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from research.errors import InvalidProposal, ProposerFatal
from research.proposing.prompt import TOOL_NAME, build_prompt
from research.proposing.proposers.base import (Proposal, ProposalContext, Proposer, ProposerTransient, attach_usage,
                                     empty_usage, exhausted)
from research.proposing.validation import validate

API_KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULTS = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 1024,
    "timeout": 120.0,
    "max_retries": 4,
    "base_url": None,
    "max_attempts": 3,
    "temperature": None,
    "full_rows": 30,
    "stagnation_after": 5,
    "prices": {},
}


def tool_definition(space_keys: list[str]) -> dict:
    """The propose_change tool: its input schema is the proposal."""
    return {
        "name": TOOL_NAME,
        "description": "Propose exactly one change of one hyperparameter from the search space.",
        "input_schema": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "enum": list(space_keys), "description": "the search-space key to change"},
                "value": {
                    "anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}],
                    "description": "the new value: a JSON number, boolean or string of the key's declared type",
                },
                "description": {"type": "string", "description": "a few words: what the change is"},
                "reasoning": {"type": "string", "description": "why it should lower val_bpb"},
            },
            "required": ["key", "value", "description", "reasoning"],
            "additionalProperties": False,
        },
    }


def cost_usd(prices: Mapping[str, Any] | None, usage: Mapping[str, int]) -> float:
    """USD for one call's usage; prices are USD per million input/output/cache_write/cache_read tokens."""
    if not prices:
        return 0.0
    total = (
        usage.get("input_tokens", 0) * float(prices.get("input", 0.0))
        + usage.get("output_tokens", 0) * float(prices.get("output", 0.0))
        + usage.get("cache_write_tokens", 0) * float(prices.get("cache_write", 0.0))
        + usage.get("cache_read_tokens", 0) * float(prices.get("cache_read", 0.0))
    )
    return total / 1_000_000


def require_api_key(api_key: str | None = None) -> str:
    """The key the client will use (the argument, else ANTHROPIC_API_KEY); ProposerFatal without one. Also asked
    by the pre-flight check (cli/preflight.py), so a missing key is said before the baselines train."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if not key:
        raise ProposerFatal(f"{API_KEY_ENV} is not set; export it or run with proposer=local.")
    return key


class _Malformed(Exception):
    pass


class ClaudeProposer(Proposer):
    name = "claude"

    def __init__(self, cfg: Mapping[str, Any] | None = None, *, api_key: str | None = None) -> None:
        merged = {**DEFAULTS, **{k: v for k, v in dict(cfg or {}).items() if v is not None or k == "base_url"}}
        self.model = str(merged["model"])
        self.max_tokens = int(merged["max_tokens"])
        self.timeout = float(merged["timeout"])
        self.max_retries = int(merged["max_retries"])
        self.base_url = merged["base_url"]
        self.max_attempts = max(1, int(merged["max_attempts"]))
        self.temperature = merged.get("temperature")
        self.full_rows = int(merged["full_rows"])
        self.stagnation_after = int(merged["stagnation_after"])
        prices = dict(merged.get("prices") or {})
        self.prices = dict(prices.get(self.model) or {})
        key = require_api_key(api_key)
        import anthropic

        self._secret = key  # kept only to scrub it from any message we raise; never shown (see __repr__)
        self._client = anthropic.Anthropic(api_key=key, base_url=self.base_url, timeout=self.timeout,
                                           max_retries=self.max_retries)

    def __repr__(self) -> str:
        return f"ClaudeProposer(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------------------------------- errors
    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _translate(self, err: Exception) -> Exception:
        """One clear sentence for an SDK error; the SDK error itself (whose request holds the key) is dropped."""
        import anthropic

        retries = f"after {self.max_retries} retries"
        if isinstance(err, anthropic.APITimeoutError):
            return ProposerTransient(f"The Anthropic API did not answer within {self.timeout:g} s ({retries}); the task will retry.")
        if isinstance(err, anthropic.APIConnectionError):
            return ProposerTransient(f"Could not connect to the Anthropic API ({retries}); check the network, the task will retry.")
        if isinstance(err, anthropic.APIStatusError):
            status = err.status_code
            detail = self._scrub(" ".join(str(err.api_message or "").split()))[:200]
            lowered = f"{detail} {err.type or ''} {err.error_code or ''}".lower()
            if status == 401:
                return ProposerFatal(f"The Anthropic API rejected the key in {API_KEY_ENV} (401); set a valid key or run with proposer=local.")
            if status == 403:
                return ProposerFatal(f"The key in {API_KEY_ENV} has no permission for model {self.model} (403); use a key or model it allows, or run with proposer=local.")
            if status in (400, 402) and ("credit" in lowered or "billing" in lowered):
                return ProposerFatal(f"The Anthropic account behind {API_KEY_ENV} is out of credit (billing error {status}); add credit or run with proposer=local.")
            if status == 404:
                return ProposerFatal(f"The Anthropic API does not know model {self.model} (404); set proposer.model to a valid model id.")
            if status == 429:
                return ProposerTransient(f"The Anthropic API is rate-limiting this key (429 {retries}); the task will retry.")
            if status == 529:
                return ProposerTransient(f"The Anthropic API is overloaded (529 {retries}); the task will retry.")
            if status >= 500 or status in (408, 409):
                return ProposerTransient(f"The Anthropic API failed with status {status} ({retries}); the task will retry.")
            return ProposerFatal(f"The Anthropic API refused the request ({status}: {detail or 'no detail'}); fix the proposer settings or run with proposer=local.")
        return ProposerTransient(f"The Anthropic API call failed ({type(err).__name__}); the task will retry.")

    # ------------------------------------------------------------------------------------------- calls
    def _create(self, system: list, messages: list, tool: dict) -> Any:
        import anthropic

        kwargs: dict[str, Any] = dict(
            model=self.model,
            max_tokens=self.max_tokens,
            system=system,
            messages=messages,
            tools=[tool],
            tool_choice={"type": "tool", "name": TOOL_NAME, "disable_parallel_tool_use": True},
        )
        if self.temperature is not None:
            kwargs["temperature"] = float(self.temperature)
        try:
            return self._client.messages.create(**kwargs)
        except anthropic.APIError as err:
            translated = self._translate(err)
        except ValueError:
            # A 200 whose body is not JSON (a proxy or gateway glitch): the SDK raises json's error, not an
            # APIError. Passing, so the task retries; without this it escaped as a traceback.
            translated = ProposerTransient("The Anthropic API sent an answer that is not valid JSON; the task will retry.")
        raise translated from None  # outside the except block: no __context__ holding the SDK error

    @staticmethod
    def _extract(message: Any) -> dict:
        stop = getattr(message, "stop_reason", None)
        content = list(getattr(message, "content", None) or [])
        tool_uses = [b for b in content if getattr(b, "type", None) == "tool_use"]
        if stop == "refusal":
            raise _Malformed(f"The answer was a refusal; propose one ordinary hyperparameter change with {TOOL_NAME}.")
        if stop == "max_tokens":
            raise _Malformed(f"The answer was cut off at max_tokens; call {TOOL_NAME} with brief reasoning.")
        if not tool_uses:
            raise _Malformed(f"The answer had no {TOOL_NAME} tool call; call {TOOL_NAME} exactly once.")
        if len(tool_uses) > 1:
            raise _Malformed(f"The answer had {len(tool_uses)} tool calls; call {TOOL_NAME} exactly once, with one change.")
        block = tool_uses[0]
        if block.name != TOOL_NAME:
            raise _Malformed(f"The answer called an unknown tool; call {TOOL_NAME}.")
        if not isinstance(block.input, dict):
            raise _Malformed("The tool input was not a JSON object with key, value, description and reasoning.")
        return block.input

    @staticmethod
    def _assistant_blocks(message: Any) -> list[dict]:
        blocks = []
        for block in getattr(message, "content", None) or []:
            kind = getattr(block, "type", None)
            if kind == "text" and block.text:
                blocks.append({"type": "text", "text": block.text})
            elif kind == "tool_use":
                blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        return blocks

    # ------------------------------------------------------------------------------------------- propose
    def propose(self, context: ProposalContext) -> Proposal:
        space = context.space_obj()
        system, user_text = self._prompt(context)
        tool = tool_definition(space.keys)
        messages: list[dict] = [{"role": "user", "content": [{"type": "text", "text": user_text}]}]
        usage = empty_usage()
        reasons: list[str] = []
        excluded = context.excluded()
        attempts = 0
        while attempts < self.max_attempts:
            attempts += 1
            try:
                message = self._create(system, messages, tool)
            except (ProposerTransient, ProposerFatal) as err:
                raise attach_usage(err, attempts=attempts, usage=usage, model=self.model, reasons=reasons,
                                   proposer=self.name)
            self._add_usage(usage, message)
            try:
                proposal = self._extract(message)
                change = validate(proposal, context.hparams, space, excluded, context.seq_len,
                                  base_sha=context.base_sha)
            except (_Malformed, InvalidProposal) as err:
                reason = str(err)
                reasons.append(reason)
                self._reask(messages, message, reason)
                continue
            return Proposal(change=change, attempts=attempts, model=self.model, rejected_reasons=reasons,
                            proposer=self.name, **usage)
        raise exhausted(reasons, attempts=attempts, usage=usage, model=self.model, proposer=self.name)

    def _prompt(self, context: ProposalContext) -> tuple[list, str]:
        """(system blocks, user text); the hybrid proposer adds its classical model's advice to the user text."""
        return build_prompt(context, full_rows=self.full_rows, stagnation_after=self.stagnation_after)

    def _add_usage(self, total: dict, message: Any) -> None:
        raw = getattr(message, "usage", None)
        call = {
            "input_tokens": int(getattr(raw, "input_tokens", 0) or 0),
            "output_tokens": int(getattr(raw, "output_tokens", 0) or 0),
            "cache_write_tokens": int(getattr(raw, "cache_creation_input_tokens", 0) or 0),
            "cache_read_tokens": int(getattr(raw, "cache_read_input_tokens", 0) or 0),
        }
        for name, value in call.items():
            total[name] += value
        total["cost_usd"] += cost_usd(self.prices, call)

    def _reask(self, messages: list, message: Any, reason: str) -> None:
        assistant = self._assistant_blocks(message)
        tool_ids = [b["id"] for b in assistant if b["type"] == "tool_use"]
        if assistant:
            messages.append({"role": "assistant", "content": assistant})
        if tool_ids:
            content = [{"type": "tool_result", "tool_use_id": tid, "content": f"Rejected: {reason}", "is_error": True}
                       for tid in tool_ids]
        else:
            content = [{"type": "text", "text": f"Rejected: {reason}"}]
        if messages[-1]["role"] == "user":  # no assistant turn to answer (empty refusal): extend the user turn
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": "user", "content": content})
