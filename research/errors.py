"""Errors of the research loop. Each message is one sentence that tells the user what happened and what to do."""
from __future__ import annotations


class ConfigurationError(ValueError):
    """A bad override, config group choice or command option, in one sentence (raised below the flows too: the
    device-slot check refuses a round larger than the GPUs)."""


class InvalidProposal(ValueError):
    """A proposal broke a rule (unknown key, wrong type, out of bounds, duplicate, not a plain key=value)."""


class ProposerFatal(RuntimeError):
    """The proposer cannot go on (bad API key, no permission, billing): the run stops with this sentence."""


class ResearchStopped(RuntimeError):
    """The loop stopped on purpose: crashed baseline, too many crashes in a row, or an interrupt."""
