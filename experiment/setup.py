"""An experiment ready to train: everything judging and recording need besides the training's outcome."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from research.proposing.proposal_record import ProposalRecord
from research.records.state import RunState
from training.fit import Fit


@dataclass(frozen=True)
class ExperimentSetup:
    exp: int
    state: RunState                   # the run's state it started from
    directory: Path                   # its folder (a paired run: the folder of that run, inside the experiment's)
    proposal: ProposalRecord | None   # None for a baseline (and a finalize arm)
    commit_sha: str                   # its block's commit in the run repository ("" when nothing was committed)
    seed: int
    started: float                    # time.time() when it was prepared
    baseline: bool
    label: str                        # the block as the UI names its task runs: the change, "baseline", an arm
    key: str                          # cache key prefix of its train/evaluate tasks
    skipped: bool = False             # no valid change, or a block predicted not to fit: recorded, nothing trains
    fit: Fit | None = None            # training.fit's verdict on what trains (None: no prediction made)

    @property
    def change_key(self) -> str | None:
        """The hyperparameter it changes (None for a baseline or a skipped proposal)."""
        return self.proposal.change.key if self.proposal is not None and self.proposal.ok else None
