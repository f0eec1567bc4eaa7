"""`proposer=hybrid`: TPE proposes, Claude reads TPE's proposal and its model's good changes, then follows or
overrides it with a reason. Without ANTHROPIC_API_KEY, or when Claude's answers stay invalid, TPE's proposal is
the answer.

The design follows the published hybrids on this task (Ferreira et al. 2026: a classical optimiser proposes
every trial and the LLM, seeing its state, may override it), with Optuna's TPE as the classical half because it
is this project's yardstick (research/proposing/proposers/tpe.py). What happened is in the ledger's `proposer` column:
`hybrid: followed TPE`, `hybrid: overrode TPE`, `hybrid: TPE alone (...)`.
"""
from __future__ import annotations

from typing import Any, Mapping

from research.errors import InvalidProposal, ProposerFatal
from research.proposing.proposers.base import USAGE_FIELDS, Proposal, ProposalContext, Proposer
from research.proposing.proposers.claude import ClaudeProposer
from research.proposing.proposers.tpe import TPEProposer
from research.proposing.space import canonical_text, same_value


class AdvisedClaude(ClaudeProposer):
    """Claude with one more section in its prompt: the classical model's advice."""

    def __init__(self, cfg: Mapping[str, Any], advice: str) -> None:
        super().__init__(cfg)
        self.advice = advice

    def _prompt(self, context: ProposalContext) -> tuple[list, str]:
        system, text = super()._prompt(context)
        return system, f"{text}\n\n{self.advice}"


def advice_text(suggestion: Proposal, good: list[tuple[str, Any, float]], context: ProposalContext) -> str:
    space = context.space_obj()
    change = suggestion.change
    lines = ["## A classical model's proposal (Optuna TPE, fitted on this run's past changes)",
             f"TPE proposes: {change.key}={canonical_text(space[change.key], change.value)} ({change.reasoning})."]
    if good:
        shown = "; ".join(f"{key}={canonical_text(space[key], value)} (paired gain {gain:+.4g})"
                          for key, value, gain in good)
        lines.append(f"The changes its good density is fitted on: {shown}.")
    lines.append("Propose TPE's change if you find nothing better; if you propose another, say in your reasoning "
                 "why it beats TPE's.")
    return "\n".join(lines)


class HybridProposer(Proposer):
    name = "hybrid"

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        cfg = dict(cfg or {})
        self.tpe = TPEProposer(cfg.get("tpe") or {})
        self.claude_cfg = {"name": "claude", **dict(cfg.get("claude") or {})}

    def __repr__(self) -> str:
        return f"HybridProposer({self.tpe!r}, model={self.claude_cfg.get('model')!r})"

    def propose(self, context: ProposalContext) -> Proposal:
        suggestion, good = self.tpe.advise(context)  # no valid change at all: InvalidProposal, a skip as for tpe
        try:
            claude = AdvisedClaude(self.claude_cfg, advice_text(suggestion, good, context))
        except ProposerFatal as err:  # no key: the classical half proposes alone
            return self._alone(suggestion, f"TPE alone ({err})")
        try:
            answer = claude.propose(context)
        except InvalidProposal as err:  # Claude's answers stayed invalid: TPE's proposal, Claude's cost counted
            alone = self._alone(suggestion, "TPE alone (Claude's answers were invalid)")
            for field in USAGE_FIELDS:
                setattr(alone, field, getattr(err, field, 0))
            alone.attempts += int(getattr(err, "attempts", 0))
            alone.model = claude.model
            alone.rejected_reasons = list(getattr(err, "rejected_reasons", []))
            return alone
        ours, theirs = suggestion.change, answer.change
        space = context.space_obj()
        followed = ours.key == theirs.key and same_value(space[ours.key], ours.value, theirs.value)
        answer.proposer = f"{self.name}: {'followed' if followed else 'overrode'} TPE"
        return answer

    def _alone(self, suggestion: Proposal, how: str) -> Proposal:
        suggestion.proposer = f"{self.name}: {how}"
        return suggestion
