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
from chaos_audit import audit_failures  # noqa: E402


@pytest.mark.slow
def test_kill_9_at_four_moments_loses_and_repeats_nothing(tmp_path):
    # 4 experiments: the 4 kills land by exp 2's evaluation (exp 0 training, exp 1's commit, exp 1's row, exp 2's
    # eval.json), and the finishing run still decides a proposal (exp 3) from the state the resumes rebuilt. A fifth
    # experiment added ~10 s and nothing a kill could reach.
    chaos = Chaos(tmp_path, experiments=4, steps=3, seed=7)
    # Fixed targets, so the short version always hits the moments that matter most; then the finishing run,
    # a plain re-run of the finished run (it must change nothing) and the audit.
    summary = chaos.run_plan(["training", "commit", "ledger", "evaluated"], random.Random(7))
    print("\n" + tables(chaos, summary))
    assert summary["missed"] == [] and summary["kills"] == 4, "a kill target was not reached before the run ended"
    assert summary["attempts"] == 6, "4 killed attempts, the finishing run and the plain re-run"
    assert audit_failures(summary, 4) == []
