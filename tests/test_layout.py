"""The run folder's and the experiment folder's file names: one owner each (research/records/layout.py,
training/run_config.py), names that never change under a run being resumed, and no other module spelling them."""
from __future__ import annotations

import re
from pathlib import Path

from research.records.layout import RunLayout
from training.run_config import ExperimentDir

from tests.project_packages import package_files

ROOT = Path(__file__).resolve().parents[1]
OWNERS = {Path("research/records/layout.py"), Path("training/run_config.py")}


def test_the_names_a_resumed_run_finds_its_files_by():
    run = RunLayout.of("runs", "t")
    assert run.root == Path("runs/t")
    assert {name: getattr(run, name).name for name in ("results", "heartbeat", "lock", "run_id", "round", "repo",
                                                       "report", "plot", "finalize_table", "verified")} == {
        "results": "results.tsv", "heartbeat": "heartbeat.json", "lock": "run.lock", "run_id": "run_id",
        "round": "round.json", "repo": "repo", "report": "report.md", "plot": "progress.png",
        "finalize_table": "finalize.tsv", "verified": "verified.md"}
    assert run.exp_dir(3) == Path("runs/t/exp/3") and run.finalize_dir("final", 7) == Path("runs/t/finalize/final/7")
    exp = ExperimentDir(run.exp_dir(3))
    assert [path.name for path in (exp.config, exp.metrics, exp.evaluation, exp.checkpoint, exp.train_log,
                                   exp.eval_log, exp.proposal, exp.device_record)] == [
        "config.json", "metrics.json", "eval.json", "checkpoint.npz", "train.log", "eval.log", "proposal.json",
        "device.jsonl"]


def test_no_module_spells_a_run_file_name_itself():
    names = ("results.tsv", "heartbeat.json", "run.lock", "round.json", "report.md", "progress.png", "verified.md",
             "finalize.tsv", "config.json", "metrics.json", "eval.json", "checkpoint.npz", "train.log", "eval.log",
             "proposal.json", "device.jsonl")
    quoted = re.compile(r"""(["'])(%s)\1""" % "|".join(re.escape(name) for name in names))  # a string literal
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in package_files() if path.relative_to(ROOT) not in OWNERS
             for number, line in enumerate(path.read_text().splitlines(), 1) if quoted.search(line)]
    assert not found, "\n".join(found)


def test_the_project_root_is_defined_once():
    """common.paths.PROJECT_ROOT, the lowest layer; every other package module imports it."""
    found = [str(path.relative_to(ROOT))
             for path in package_files()
             if re.search(r"__file__\)\.resolve\(\)\.(parents\[1\]|parent\.parent\b)", path.read_text())]
    assert found == ["common/paths.py"]
