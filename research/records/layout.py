"""Where a run's files live: runs/<tag>/ and every name inside it, in one place (paths only, no I/O).

    runs/<tag>/results.tsv     the ledger, the source of truth (research/records/ledger.py)
               heartbeat.json  what the run is doing now (research/records/heartbeat.py)
               run.lock        one orchestrator per run (research/records/runlock.py)
               run_id          a random id per run folder, part of every cache key
               round.json      the members of a parallel round while it is open (experiment/rounds.py)
               repo/           git: hparams.yaml per experiment (research/records/runrepo.py)
               exp/<N>/        one experiment's folder (training.run_config.ExperimentDir names its files)
               settings.json   decide block and planned experiments, for report and status (research/records/run_settings.py)
               report.md, progress.png   the report (research/reporting/report.py)
               finalize.tsv, finalize/<arm>/<seed>/, verified.md   `autoresearch finalize` (flows/finalize.py)

Every module asks this class for a path instead of spelling the name, so a rename is one edit and two
modules cannot disagree on where a file is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.paths import FolderEntry


@dataclass(frozen=True)
class RunLayout:
    root: Path

    results = FolderEntry("results.tsv")
    heartbeat = FolderEntry("heartbeat.json")
    lock = FolderEntry("run.lock")
    run_id = FolderEntry("run_id")
    round = FolderEntry("round.json")
    repo = FolderEntry("repo")
    experiments = FolderEntry("exp")
    settings = FolderEntry("settings.json")  # the run's decide block and planned experiments (research/records/run_settings.py)
    report = FolderEntry("report.md")
    plot = FolderEntry("progress.png")
    finalize_table = FolderEntry("finalize.tsv")
    verified = FolderEntry("verified.md")  # the "Verified" section `autoresearch finalize` writes, the report reads

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))  # accept a str or any os.PathLike

    @classmethod
    def of(cls, runs_dir: str | os.PathLike, tag: str) -> "RunLayout":
        return cls(Path(runs_dir) / tag)

    def exp_dir(self, exp: int) -> Path:
        return self.experiments / str(exp)

    def finalize_dir(self, arm: str, seed: int) -> Path:
        return self.root / "finalize" / arm / str(seed)
