"""kill -9 in the middle of a paired decision: the resumed run re-uses every finished run of that decision,
records the experiment once, and reaches the same verdict from the same runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research.ledger import Ledger
from tests.test_flow_research import TINY_RUN, train_starts

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_kill_9_during_a_paired_run_resumes_the_decision_without_repeating_a_run(tmp_path):
    run_dir = tmp_path / "pairkill"
    # A tiny tested effect keeps the SPRT undecided up to the cap of 3 pairs, so exp 2 trains seeds 43 (the
    # incumbent's most recent), 42 and 44, and the incumbent trains 44. The kill lands within 0.2 s of the second pair's start, while its process
    # still starts up, so 20 steps are enough (this test: 77 s on an idle machine; with 60 steps it took 445 s
    # in a full suite under load 3-5).
    command = [sys.executable, "-m", "flows.cli", "run", *TINY_RUN, "budget.steps=20", "proposer=local",
               f"paths.runs_dir={tmp_path}", "tag=pairkill", "research.max_experiments=3",
               "decide.sequential.effect=0.0001", "decide.sequential.max_pairs=3"]
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

    second = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    rows = Ledger(run_dir / "results.tsv").rows()
    assert [row["exp"] for row in rows] == [0, 1, 2]
    assert rows[2]["paired_seeds"] == "42 43 44" and "cap" in rows[2]["verdict"]
    exp2 = run_dir / "exp" / "2"
    # The first pair was re-used, the pair cut by the kill ran again, the runs after it ran once.
    assert [train_starts(exp2), train_starts(exp2 / "seed-42")] == [1, 2]
    assert train_starts(exp2 / "seed-44") == 1 and train_starts(exp2 / "incumbent-44") == 1
