"""Chaos, short: kill -9 the research flow 4 times (training, a fresh commit, a fresh ledger row, evaluation),
resume the same tag each time, then audit the run (bench/chaos.py; the long version is in docs/RELIABILITY.md).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from chaos import Chaos, tables  # noqa: E402


@pytest.mark.slow
def test_kill_9_at_four_moments_loses_and_repeats_nothing(tmp_path):
    chaos = Chaos(tmp_path, experiments=5, steps=3, seed=7)
    rng = random.Random(7)
    # Fixed targets, so the short version always hits the moments that matter most.
    for target in ("training", "commit", "ledger", "evaluated"):
        assert chaos.attempt(target, rng) is None, f"the run ended before the '{target}' kill"
    assert chaos.attempt(None, rng) == 0
    from chaos import audit

    summary = audit(chaos.run_dir, 5, chaos.snapshots)
    summary.update(kills=len(chaos.kills), resumes=chaos.attempts - 1, missed=[], rerun_changed_ledger=False,
                   seconds=0)
    print("\n" + tables(chaos, summary))
    assert summary["rows"] == 5 and summary["duplicates"] == 0 and summary["lost"] == [] and summary["extra"] == []
    assert summary["config_mismatch"] == [] and summary["sha_mismatch"] == [] and summary["orphan_tags"] == []
    assert summary["redone_trainings"] == 0 and summary["redone_evaluations"] == 0
    assert summary["heartbeat_ok"] and summary["main_ok"]
