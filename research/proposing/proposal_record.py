"""What the proposer answered for one experiment, as the loop carries it from the propose task to the ledger row.

Either a validated change (`status` "ok", `change` set) or a skip (`status` "skip", `reason` says why no valid
change came). It is written to EXP_DIR/proposal.json in a flat JSON form (the form of every run so far, so a run
started before this type existed resumes with its answers) and returned by the propose task, whose result
Prefect persists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from research.proposing.proposers.base import USAGE_FIELDS, Proposal
from research.proposing.space import Change

OK, SKIP = "ok", "skip"
_CHANGE_FIELDS = ("key", "value", "override", "description", "reasoning", "previous")


@dataclass(frozen=True)
class ProposalRecord:
    status: str                                  # OK or SKIP
    proposer: str                                # the proposer's name (local, random, claude)
    change: Change | None = None                 # the validated change (OK only)
    reason: str = ""                             # why no change came (SKIP only)
    attempts: int = 1                            # answers asked for, re-asks included
    model: str = ""                              # the LLM that answered, if any
    rejected_reasons: tuple[str, ...] = ()       # what validation said about the refused answers
    usage: Mapping[str, float] = field(default_factory=dict)  # USAGE_FIELDS: tokens and dollars spent

    @property
    def ok(self) -> bool:
        return self.status == OK and self.change is not None

    @classmethod
    def accepted(cls, proposal: Proposal, proposer: str) -> "ProposalRecord":
        return cls(OK, proposal.proposer or proposer, proposal.change, attempts=proposal.attempts,
                   model=proposal.model, rejected_reasons=tuple(proposal.rejected_reasons),
                   usage={name: getattr(proposal, name) for name in USAGE_FIELDS})

    @classmethod
    def skipped(cls, error: Exception, proposer: str) -> "ProposalRecord":
        """From the InvalidProposal a proposer raised after its bounded re-asks (research.proposing.proposers.base.exhausted)."""
        return cls(SKIP, getattr(error, "proposer", "") or proposer, reason=str(error),
                   attempts=getattr(error, "attempts", 1), model=getattr(error, "model", ""),
                   rejected_reasons=tuple(getattr(error, "rejected_reasons", ())),
                   usage={name: getattr(error, name, 0) for name in USAGE_FIELDS})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "proposer": self.proposer, "attempts": self.attempts,
                                "model": self.model, "rejected_reasons": list(self.rejected_reasons),
                                **{name: self.usage.get(name, 0) for name in USAGE_FIELDS}}
        if self.change is not None:
            data.update({name: getattr(self.change, name) for name in _CHANGE_FIELDS},
                        canonical=self.change.canonical, text=self.change.text)
        else:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ProposalRecord":
        change = (Change(**{name: data.get(name) for name in _CHANGE_FIELDS}) if data.get("status") == OK else None)
        return cls(str(data.get("status")), str(data.get("proposer") or ""), change, reason=str(data.get("reason") or ""),
                   attempts=int(data.get("attempts") or 1), model=str(data.get("model") or ""),
                   rejected_reasons=tuple(data.get("rejected_reasons") or ()),
                   usage={name: data.get(name, 0) for name in USAGE_FIELDS})
