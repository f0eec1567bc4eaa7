"""Proposers: claude (the Anthropic API), local (offline bandit, the default without a key), random (control).

`make_proposer(proposer_cfg)` builds one from a conf/proposer/*.yaml block (a plain dict with `name:`).
"""
from __future__ import annotations

from typing import Any, Mapping

from research.errors import ProposerFatal
from research.proposers.base import Proposal, ProposalContext, Proposer, ProposerTransient

__all__ = ["make_proposer", "Proposal", "ProposalContext", "Proposer", "ProposerTransient", "NAMES"]

NAMES = ("claude", "local", "random")


def make_proposer(proposer_cfg: Mapping[str, Any] | None) -> Proposer:
    """The proposer named by `proposer_cfg["name"]`. Claude without ANTHROPIC_API_KEY raises ProposerFatal."""
    cfg = dict(proposer_cfg or {})
    name = cfg.get("name")
    if name == "claude":
        from research.proposers.claude import ClaudeProposer

        return ClaudeProposer(cfg)
    if name == "local":
        from research.proposers.local import LocalProposer

        return LocalProposer(cfg)
    if name == "random":
        from research.proposers.random_proposer import RandomProposer

        return RandomProposer(cfg)
    raise ProposerFatal(f"Unknown proposer {name!r}; run with proposer=claude, proposer=local or proposer=random.")
