"""`autoresearch finalize`: the plan (arms, ablations), the conclusions, finalize.tsv, and end to end on a recorded
tiny run with a kill -9 in the middle and a resume that cannot lean on Prefect's cache."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from research.judging.finalize import plan_arms, summarize, trainings_needed, verified_markdown
from research.records.finalize_table import FinalizeTable, FinalizeTableError
from training.run_config import ExperimentDir
from tests.cli_in_process import holds_results, run_cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BASE = {"seed": 42, "optim": {"lr": 0.04, "wd": 0.1}, "model": {"depth": 4}}


def keep(exp, key, value, block, paired_delta=-0.01):
    return ({"exp": exp, "key": key, "change": f"{key}={value}", "paired_delta": paired_delta}, block)


def two_keeps():
    first = {**BASE, "optim": {"lr": 0.05, "wd": 0.1}}
    second = {**first, "model": {"depth": 2}}
    return [keep(3, "optim.lr", 0.05, first), keep(7, "model.depth", 2, second)]


def test_each_kept_change_is_left_out_of_the_final_block():
    arms, notes = plan_arms(BASE, two_keeps(), ablation=True)
    by_name = {arm.name: arm for arm in arms}
    assert [arm.name for arm in arms] == ["baseline", "final", "without-exp3", "without-exp7"]
    assert by_name["without-exp3"].hparams == {**BASE, "model": {"depth": 2}}  # lr back, depth kept
    assert by_name["without-exp7"].hparams == {**BASE, "optim": {"lr": 0.05, "wd": 0.1}}
    assert notes == [] and trainings_needed(arms, 4) == 16
    assert [arm.name for arm in plan_arms(BASE, two_keeps(), ablation=False)[0]] == ["baseline", "final"]


def test_one_keep_shares_the_baselines_trainings_and_a_superseded_keep_is_not_ablated():
    arms, _ = plan_arms(BASE, two_keeps()[:1], ablation=True)
    assert arms[2].same_as == "baseline" and trainings_needed(arms, 4) == 8
    again = {**BASE, "optim": {"lr": 0.06, "wd": 0.1}}
    arms, notes = plan_arms(BASE, [two_keeps()[0], keep(9, "optim.lr", 0.06, again)], ablation=True)
    assert [arm.name for arm in arms] == ["baseline", "final", "without-exp9"] and "superseded by exp 9" in notes[0]
    nothing, _ = plan_arms(BASE, [], ablation=True)
    assert nothing[1].same_as == "baseline" and trainings_needed(nothing, 4) == 4


def test_the_verified_gain_and_which_keeps_matter():
    arms, notes = plan_arms(BASE, two_keeps(), ablation=True)
    records = []
    for i, seed in enumerate((1000, 1001, 1002, 1003)):
        wobble = (-1) ** i * 0.001
        for arm, value in (("baseline", 2.05), ("final", 2.00), ("without-exp3", 2.03), ("without-exp7", 2.00)):
            scatter = 0.002 * (-1) ** (i // 2) if arm == "without-exp7" else 0.0  # removing exp 7: +-0.002, mean 0
            records.append({"arm": arm, "seed": seed, "val_bpb": value + wobble + scatter})
    summary = summarize(arms, records, [row for row, _ in two_keeps()], z=2.0)
    assert summary["gain"].mean == pytest.approx(0.05) and summary["real"]
    verdicts = {item["exp"]: item["verdict"] for item in summary["changes"]}
    assert verdicts == {3: "matters", 7: "no measurable cost"}
    text = verified_markdown(summary, notes, [1000, 1001, 1002, 1003], 2.0)
    assert text.startswith("## Verified") and "+0.050000" in text and "`optim.lr=0.05`" in text
    assert "| 7 | `model.depth=2` | +0.010000 |" in text


@pytest.mark.parametrize("test_gain, flagged", [(0.0, True), (0.05, False)])
def test_a_val_gain_the_test_split_does_not_show_is_flagged(test_gain, flagged):
    arms, notes = plan_arms(BASE, two_keeps(), ablation=False)
    records = []
    for i, seed in enumerate((1000, 1001, 1002, 1003)):
        wobble = 0.002 * (-1) ** i
        records += [{"arm": "baseline", "seed": seed, "val_bpb": 2.05, "test_bpb": 2.10},
                    {"arm": "final", "seed": seed, "val_bpb": 2.00 + wobble / 4, "test_bpb": 2.10 - test_gain + wobble}]
    summary = summarize(arms, records, [], z=2.0)
    assert summary["real"] and summary["test_gain"].pairs == 4 and summary["overfit"] is flagged
    text = verified_markdown(summary, notes, [1000, 1001, 1002, 1003], 2.0)
    assert "held-out test split" in text and ("Overfitting to the validation split" in text) is flagged


def test_finalize_table_is_idempotent_and_survives_a_cut_off_line(tmp_path):
    table = FinalizeTable(tmp_path / "finalize.tsv")
    assert table.record({"arm": "final", "seed": 1000, "val_bpb": 0.1 + 0.2, "test_bpb": 2.5, "error": "a\tb\nc"})
    assert not table.record({"arm": "final", "seed": 1000, "val_bpb": 9.0})
    assert table.rows()[0]["val_bpb"] == 0.1 + 0.2 and table.rows()[0]["error"] == "a b c"
    assert table.rows()[0]["test_bpb"] == 2.5
    with open(tmp_path / "finalize.tsv", "a") as handle:
        handle.write("baseline\t1000\t2.0")  # a line cut off mid-write: no newline
    assert [row["arm"] for row in table.rows()] == ["final"] and table.has("final", 1000)
    (tmp_path / "finalize.tsv").write_text("something else\n")
    with pytest.raises(FinalizeTableError, match="move it aside"):
        table.rows()


TINY_RUN = [
    "preset=cpu", "hparams.model.depth=2", "hparams.model.aspect_ratio=32", "hparams.model.head_dim=32",
    "hparams.batch.device_batch_size=8", "hparams.batch.total_batch_tokens=1024", "train.seq_len=128",
    "train.eval_tokens=4096", "train.eval_batch_size=8", "budget.kind=steps", "budget.steps=4",
]
# A real run with two keeps on different keys (exp 2 and exp 3), recorded by tests/runs/record_finalize_two_keeps.sh:
# finalize starts from it instead of a research run made for the purpose (that run was most of this test's time).
RECORDED_RUN = PROJECT_ROOT / "tests" / "runs" / "finalize-two-keeps.tar.xz"
ARMS = ("baseline", "final", "without-exp2", "without-exp3")


def train_starts(exp_dir: Path) -> int:
    log = exp_dir / "train.log"
    return log.read_text().count("step     1 |") if log.is_file() else 0


def restore_recorded_run(runs_dir: Path, dataset: dict) -> Path:
    """The recorded run as runs_dir/fin, trained on `dataset`: the run folder as the product wrote it, but for its
    data section, which named the recording machine's copy of the same tiny data."""
    with tarfile.open(RECORDED_RUN) as archive:
        # Our own archive; the 'data' filter where this Python has it (3.10.12+), as 3.14 will by default.
        archive.extractall(runs_dir, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    config_path = runs_dir / "fin" / "exp" / "0" / "config.json"
    config = json.loads(config_path.read_text())
    config["data"] = {"shard_dir": str(dataset["shard_dir"]), "tokenizer_dir": str(dataset["tokenizer_dir"]),
                      "data_version": dataset["manifest"]["data_version"]}
    config_path.write_text(json.dumps(config, indent=2))
    return runs_dir / "fin"


def evaluating_after_training(run_dir: Path, table: FinalizeTable) -> Path | None:
    """A finalize folder whose training finished (metrics.json ok, checkpoint written) and whose evaluation has
    not: the moment a resume must re-use the training instead of running it again."""
    recorded = {(row["arm"], row["seed"]) for row in table.rows()}
    for metrics in sorted((run_dir / "finalize").glob("*/*/metrics.json")):
        folder = metrics.parent
        files = ExperimentDir(folder)
        if (folder.parent.name, int(folder.name)) in recorded or files.evaluation.exists():
            continue
        try:
            finished = json.loads(metrics.read_text()).get("status") == "ok" and files.checkpoint.is_file()
        except ValueError:  # caught mid-write
            continue
        if finished:
            return folder
    return None


@pytest.mark.slow
def test_finalize_end_to_end_with_a_kill_9_and_a_resume_without_prefects_cache(tmp_path, tiny_dataset):
    run_dir = restore_recorded_run(tmp_path, tiny_dataset)
    command = [sys.executable, "-m", "cli.main", "finalize", "fin", "preset=cpu", f"paths.runs_dir={tmp_path}",
               "finalize.seeds=2"]
    table = FinalizeTable(run_dir / "finalize.tsv")
    first = subprocess.Popen(command, cwd=PROJECT_ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
    try:
        # kill -9 once a row is recorded and the next training has finished but not its evaluation.
        deadline, cut = time.time() + 300, None
        while time.time() < deadline and first.poll() is None:
            cut = evaluating_after_training(run_dir, table) if table.rows() else None
            if cut is not None:
                break
            time.sleep(0.05)
        assert cut is not None, "finalize never stood between a finished training and its evaluation"
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    killed_at = len(table.rows())
    assert 1 <= killed_at < 8 and not table.has(cut.parent.name, int(cut.name)), "the kill came after the row"
    # The resume has a result store of its own: Prefect's cache of the killed process's train tasks is out of the
    # way, so only what is on disk (finalize.tsv, metrics.json + checkpoint) can keep a training from running twice.
    # It runs in this process (tests/cli_in_process.py): nobody kills it.
    fresh = tmp_path / "fresh-result-store"
    code, printed = run_cli(command[3:], result_store=fresh)
    assert code == 0
    assert holds_results(fresh), "the resume did not store its task results in its own store"
    assert (f"4 arms (baseline, final, without-exp2, without-exp3) x 2 seeds = 8 trainings, {8 - killed_at} still "
            "to run") in printed

    rows = table.rows()
    assert sorted((row["arm"], row["seed"]) for row in rows) == sorted(
        (arm, seed) for arm in ARMS for seed in (1000, 1001))
    assert all(row["val_bpb"] is not None for row in rows)
    # No training ran twice, not even the one whose evaluation the kill cut: its training was re-used from its
    # folder and only the evaluation ran again.
    assert {(row["arm"], row["seed"]): train_starts(run_dir / "finalize" / row["arm"] / str(row["seed"]))
            for row in rows} == {(arm, seed): 1 for arm in ARMS for seed in (1000, 1001)}
    assert json.loads(ExperimentDir(cut).evaluation.read_text())["status"] == "ok"
    report = (run_dir / "report.md").read_text()
    assert "## Verified" in report and "without" not in report.split("## Verified")[0].split("## Kept")[0]
    assert "Verified gain (baseline - final, val_bpb)" in report


@pytest.mark.slow
def test_finalize_scores_baseline_and_final_on_the_test_split_no_decision_read(tmp_path, tiny_bundled_with_test_split):
    from flows.research import research_flow
    from research.records.ledger import Ledger

    data_dir = tiny_bundled_with_test_split["root"] / "datasets"  # a copy of the data with a test split
    assert tiny_bundled_with_test_split["manifest"]["tokens"]["test"] > 0
    research_flow(overrides=TINY_RUN + [f"paths.runs_dir={tmp_path}", f"paths.data_dir={data_dir}", "tag=split",
                                        "proposer=local", "research.max_experiments=3", "decide.rule=single",
                                        "decide.min_delta=-10", "decide.sigma_k=-1000"])
    run_dir = tmp_path / "split"
    rows = Ledger(run_dir / "results.tsv").rows()
    assert rows[-1]["status"] == "keep"
    # No decision read the test split: every evaluation of the run itself scored the validation split.
    for row in rows:
        assert json.loads((run_dir / "exp" / str(row["exp"]) / "eval.json").read_text())["eval_split"] == "val"
    # `autoresearch finalize` in this process (tests/cli_in_process.py; the kill test above runs it as a process), on
    # one fresh seed: each arm trained once and scored on both splits (a second seed repeated those 2 trainings
    # and 4 evaluations on another seed; the seeds' pairing is the kill test's and finalize's unit tests').
    code, _ = run_cli(["finalize", "split", "preset=cpu", f"paths.runs_dir={tmp_path}", "finalize.seeds=1",
                       "finalize.ablation=false"])
    assert code == 0
    records = FinalizeTable(run_dir / "finalize.tsv").rows()
    assert sorted((r["arm"], r["seed"]) for r in records) == [("baseline", 1000), ("final", 1000)]
    assert all(isinstance(r["test_bpb"], float) and r["test_bpb"] != r["val_bpb"] for r in records)
    test_dir = run_dir / "finalize" / "final" / "1000" / "test"
    assert json.loads((test_dir / "eval.json").read_text())["eval_split"] == "test"
    assert json.loads((test_dir / "config.json").read_text())["data"]["shard_dir"].startswith(str(data_dir))
    assert "On the held-out test split, which no decision read" in (run_dir / "report.md").read_text()


def test_finalize_of_a_run_without_results_is_one_sentence(tmp_path):
    from flows.finalize import load_run
    from research.errors import ResearchStopped

    with pytest.raises(ResearchStopped) as error:
        load_run(tmp_path / "nothing", "nothing")
    assert "no recorded baseline" in str(error.value) and "autoresearch run tag=nothing" in str(error.value)
    assert "\n" not in str(error.value)
