"""Proposers: claude (the Anthropic API), local (offline bandit, the default without a key), tpe (Optuna's TPE under
the one-change rule, the standard tool as a yardstick), random (control).

`make_proposer(proposer_cfg)` builds one from a conf/proposer/*.yaml block (a plain dict with `name:`).
"""
from __future__ import annotations

from typing import Any, Mapping

from common.registry import Registry
from research.errors import ProposerFatal
from research.proposing.proposers.base import Proposal, ProposalContext, Proposer, ProposerTransient

__all__ = ["make_proposer", "Proposal", "ProposalContext", "Proposer", "ProposerTransient", "PROPOSERS"]

# common.registry's style, the project's one: `proposer=random` never pays for the anthropic SDK.
PROPOSERS = Registry({
    "claude": "research.proposing.proposers.claude:ClaudeProposer",
    "local": "research.proposing.proposers.local:LocalProposer",
    "random": "research.proposing.proposers.random_proposer:RandomProposer",
    "tpe": "research.proposing.proposers.tpe:TPEProposer",
    "hybrid": "research.proposing.proposers.hybrid:HybridProposer",
})


def make_proposer(proposer_cfg: Mapping[str, Any] | None) -> Proposer:
    """The proposer named by `proposer_cfg["name"]`. Claude without ANTHROPIC_API_KEY raises ProposerFatal."""
    cfg = dict(proposer_cfg or {})
    name = cfg.get("name")
    if name not in PROPOSERS:
        choices = ", ".join(f"proposer={known}" for known in PROPOSERS)
        raise ProposerFatal(f"Unknown proposer {name!r}; run with one of {choices}.")
    return PROPOSERS.load(name)(cfg)
