"""The proposal record: what proposal.json holds, read back the same, and the files of earlier runs still read."""
from __future__ import annotations

import pickle

from research.errors import InvalidProposal
from research.proposing.proposal_record import ProposalRecord
from research.proposing.proposers.base import Proposal, exhausted
from research.proposing.space import Change

CHANGE = Change("optim.matrix_lr", 0.05, "hparams.optim.matrix_lr=0.05", "raise it", "why not", previous=0.04)


def test_an_accepted_change_round_trips_through_its_json_and_prefects_pickle():
    proposal = Proposal(CHANGE, attempts=2, input_tokens=10, output_tokens=5, cost_usd=0.01, model="m",
                        rejected_reasons=["out of bounds"], proposer="claude")
    record = ProposalRecord.accepted(proposal, "fallback-name")
    assert record.ok and record.proposer == "claude" and record.usage["input_tokens"] == 10
    assert ProposalRecord.from_json(record.to_json()) == record
    assert pickle.loads(pickle.dumps(record)) == record  # Prefect persists the task's result


def test_a_skip_keeps_its_reason_and_what_it_cost():
    error = exhausted(["first reason.", "last reason."], attempts=3, usage={"input_tokens": 7}, model="m")
    assert isinstance(error, InvalidProposal)
    record = ProposalRecord.skipped(error, "claude")
    assert not record.ok and record.reason == "last reason." and record.attempts == 3
    assert record.rejected_reasons == ("first reason.", "last reason.") and record.usage["input_tokens"] == 7
    assert ProposalRecord.from_json(record.to_json()) == record


def test_a_proposal_json_written_before_the_record_type_still_reads():
    # The flat form tasks/propose.py wrote before ProposalRecord existed: a resumed old run must read it.
    old = {"status": "ok", "key": "optim.matrix_lr", "value": 0.05, "canonical": "0.05", "override":
           "hparams.optim.matrix_lr=0.05", "text": "optim.matrix_lr=0.05", "previous": 0.04, "description": "raise it",
           "reasoning": "why not", "attempts": 1, "model": "", "proposer": "local", "rejected_reasons": [],
           "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0}
    record = ProposalRecord.from_json(old)
    assert record.change == CHANGE and record.proposer == "local"
    assert record.to_json() == old
