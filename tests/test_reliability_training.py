"""Training faults: each ends as a `crash` row with its reason, the loop goes on, and N crashes in a row stop the
run with one sentence. Fast cases use tasks.train.run_training / tasks.evaluate.run_evaluation on a prepared
experiment folder (the scenarios of bench/faults.py); one flow-level test runs the real loop.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from faults import TRAINING_SCENARIOS, run_training_scenario  # noqa: E402
from training_helpers import living_processes, make_experiment  # noqa: E402

from research.judging.verdict import check_stop  # noqa: E402
from research.records.ledger import Ledger  # noqa: E402


TINY_RUN = ["preset=cpu", "proposer=local", "budget.kind=steps", "budget.steps=3", "train.eval_tokens=8192",
            "hparams.model.depth=2", "hparams.batch.total_batch_tokens=2048", "hparams.batch.device_batch_size=8"]


@pytest.fixture(scope="module")
def fault_rows(tiny_dataset, tmp_path_factory):
    """Every scenario, one after the other in ONE run folder (as the loop would do), and its results."""
    base = tmp_path_factory.mktemp("faults")
    results = []
    for number, scenario in enumerate(TRAINING_SCENARIOS, start=2):
        exp_dir = make_experiment(base, tiny_dataset, ["budget.steps=4"], scenario.fault, name=f"exp{number}")
        results.append(run_training_scenario(scenario, exp_dir, base / "run", number))
    return base, results


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(TRAINING_SCENARIOS)), ids=[s.name for s in TRAINING_SCENARIOS])
def test_training_fault_is_a_crash_with_its_reason(fault_rows, index):
    result = fault_rows[1][index]
    assert result["status"] == "crash", result
    assert TRAINING_SCENARIOS[index].words in result["error"], result


@pytest.mark.slow
def test_every_fault_was_recorded_and_the_loop_went_on(fault_rows):
    base, results = fault_rows
    rows = Ledger(base / "run" / "results.tsv").rows()
    assert [row["exp"] for row in rows] == list(range(2, 2 + len(TRAINING_SCENARIOS)))
    assert {row["status"] for row in rows} == {"crash"}
    # The orchestrator stays up and no training or evaluation process of these experiments survives its kill
    # (searched by command line: a survivor would be an orphan of init, outside this process's tree).
    assert living_processes("training.", str(base)) == []
    stop = check_stop(rows, 3)
    assert stop and stop.startswith("The last 3 experiments crashed") and stop.count(". ") == 0


def test_crashes_in_a_row_stop_only_after_n():
    row = {"status": "crash", "error": "the training loss became nan at step 2\nTraceback..."}
    assert check_stop([{"status": "baseline"}, row, row], 3) is None
    assert check_stop([{"status": "baseline"}, row, {"status": "skip"}, row], 3) is None
    stop = check_stop([{"status": "baseline"}, row, row, {"status": "skip"}, row], 3)
    assert "became nan at step 2" in stop and "Traceback" not in stop


@pytest.mark.slow
def test_flow_stops_cleanly_after_consecutive_crashes(tmp_path, capsys):
    """Two good baselines, then a fault in every training: three crash rows, then one sentence, exit 2."""
    from cli.main import main

    tiny = [*TINY_RUN, f"paths.runs_dir={tmp_path}", "tag=crashes"]
    assert main(["run", *tiny, "research.max_experiments=2"]) == 0
    # The kind is quoted: Hydra's grammar reads a bare nan as the float NaN.
    code = main(["run", *tiny, "research.max_experiments=10", "decide.max_consecutive_crashes=3",
                 "fault={kind:'nan',step:1}"])
    err = capsys.readouterr().err
    assert code == 2
    message = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "The last 3 experiments crashed" in message[0] and "Traceback" not in err
    rows = Ledger(tmp_path / "crashes" / "results.tsv").rows()
    assert [row["status"] for row in rows] == ["baseline", "baseline", "crash", "crash", "crash"]
    assert all("became nan at step 1" in row["error"] for row in rows[2:])
    from research.records.heartbeat import read_heartbeat

    assert read_heartbeat(tmp_path / "crashes")["phase"] == "stopped"


@pytest.mark.slow
def test_flow_kills_a_hung_evaluation_after_twice_the_grace_seconds(tmp_path, capsys):
    """grace_seconds=2: the evaluation is killed after 4 s without output (training's own limit is far away)."""
    from cli.main import main

    code = main(["run", *TINY_RUN, f"paths.runs_dir={tmp_path}", "tag=evalhang", "research.max_experiments=1",
                 "budget.grace_seconds=2", "budget.deadline_factor=30", "fault={kind:eval_hang}"])
    rows = Ledger(tmp_path / "evalhang" / "results.tsv").rows()
    assert [row["status"] for row in rows] == ["crash"], (code, capsys.readouterr().err[-2000:])
    assert rows[0]["error"].startswith("evaluation killed after") and "no output for 4 s" in rows[0]["error"]
