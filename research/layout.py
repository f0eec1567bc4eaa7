"""Where a run's files live: runs/<tag>/ and every name inside it, in one place (paths only, no I/O).

    runs/<tag>/results.tsv     the ledger, the source of truth (research/ledger.py)
               heartbeat.json  what the run is doing now (research/heartbeat.py)
               run.lock        one orchestrator per run (research/runlock.py)
               run_id          a random id per run folder, part of every cache key
               round.json      the members of a parallel round while it is open (flows/parallel.py)
               repo/           git: hparams.yaml per experiment (research/runrepo.py)
               exp/<N>/        one experiment's folder (training.run_config.ExperimentDir names its files)
               settings.json   decide block and planned experiments, for report and status (research/run_settings.py)
               report.md, progress.png   the report (research/report.py)
               finalize.tsv, finalize/<arm>/<seed>/, verified.md   `autoresearch finalize` (flows/finalize.py)

Every module asks this class for a path instead of spelling the name, so a rename is one edit and two
modules cannot disagree on where a file is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))  # accept a str or any os.PathLike

    @classmethod
    def of(cls, runs_dir: str | os.PathLike, tag: str) -> "RunLayout":
        return cls(Path(runs_dir) / tag)

    @property
    def results(self) -> Path:
        return self.root / "results.tsv"

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeat.json"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"

    @property
    def run_id(self) -> Path:
        return self.root / "run_id"

    @property
    def round(self) -> Path:
        return self.root / "round.json"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def experiments(self) -> Path:
        return self.root / "exp"

    def exp_dir(self, exp: int) -> Path:
        return self.experiments / str(exp)

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def plot(self) -> Path:
        return self.root / "progress.png"

    @property
    def settings(self) -> Path:
        """The run's decide block and planned experiments, saved when it starts (research/run_settings.py)."""
        return self.root / "settings.json"

    @property
    def finalize_table(self) -> Path:
        return self.root / "finalize.tsv"

    def finalize_dir(self, arm: str, seed: int) -> Path:
        return self.root / "finalize" / arm / str(seed)

    @property
    def verified(self) -> Path:
        """The "Verified" section `autoresearch finalize` writes and the report reads."""
        return self.root / "verified.md"
