"""kill -9 in the middle of a paired decision: the resumed run re-uses the decision's finished run, trains again
only the one the kill cut, and records the experiment once. Which verdict the pairs give is tests/test_settle.py's
(a stand-in runner, no training); here only what survives a kill matters."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research.records.ledger import Ledger
from tests.cli_in_process import holds_results, run_cli
from tests.test_flow_research import TINY_RUN, train_starts

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_kill_9_during_a_paired_run_resumes_the_decision_without_repeating_a_run(tmp_path):
    run_dir = tmp_path / "pairkill"
    # A tiny tested effect keeps the SPRT undecided up to the cap of 2 pairs, so exp 2 trains seed 43 (the
    # incumbent's most recent) and then seed 42, both seeds the baselines already have: no incumbent training. The
    # kill lands within 0.2 s of the second pair's first step, so its 20 steps are still running (with 3 pairs and
    # the incumbent's seed 44 this test took 70 s in CI; the third pair added nothing a kill could break).
    command = [sys.executable, "-m", "cli.main", "run", *TINY_RUN, "budget.steps=20", "proposer=local",
               f"paths.runs_dir={tmp_path}", "tag=pairkill", "research.max_experiments=3",
               "decide.sequential.effect=0.0001", "decide.sequential.max_pairs=2"]
    first = subprocess.Popen(command, cwd=PROJECT_ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 500
        while train_starts(run_dir / "exp" / "2" / "seed-42") < 1 and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert train_starts(run_dir / "exp" / "2" / "seed-42") >= 1, "the second pair never started"
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    assert Ledger(run_dir / "results.tsv").exps() == {0, 1}  # exp 2 was still being decided
    assert not (run_dir / "exp" / "2" / "seed-42" / "metrics.json").exists(), "the kill came after the training"

    # The resume has a result store of its own: Prefect's cache of the killed process's tasks is out of the way, so
    # only the experiment folders can keep a finished run from running again. It runs in this process
    # (tests/cli_in_process.py): nobody kills it, and a process of its own started one more Prefect server.
    fresh = tmp_path / "fresh-result-store"
    code, _ = run_cli(command[3:], result_store=fresh)
    assert code == 0
    assert holds_results(fresh), "the resume did not store its task results in its own store"
    rows = Ledger(run_dir / "results.tsv").rows()
    assert [row["exp"] for row in rows] == [0, 1, 2]
    assert rows[2]["paired_seeds"] == "42 43"  # the decision went on from both pairs, the re-used and the redone
    exp = run_dir / "exp"
    # The baselines and the first pair were re-used, the pair cut by the kill ran again, nothing else ran.
    assert [train_starts(exp / "0"), train_starts(exp / "1"), train_starts(exp / "2")] == [1, 1, 1]
    assert train_starts(exp / "2" / "seed-42") == 2
    assert sorted(path.name for path in (exp / "2").iterdir() if path.is_dir()) == ["seed-42"]
