"""The `autoresearch` command line: the seed's `python train.py` summary, and one sentence for bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = ("val_bpb", "training_seconds", "total_seconds", "peak_memory_gb", "mfu_percent", "total_tokens_M",
                "num_steps", "num_params_M", "depth", "backend")


def cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def assert_one_sentence_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, proc.stderr
    for word in words:
        assert word in error_lines[0], error_lines[0]


@pytest.mark.slow
def test_train_prints_the_seed_summary(tmp_path):
    proc = cli("train", "preset=cpu", "budget.kind=steps", "budget.steps=3", "hparams.model.depth=2",
               "train.eval_tokens=4096", f"paths.runs_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = proc.stdout.split("\n---\n", 1)[1]
    values = dict(line.split(": ", 1) for line in summary.strip().splitlines())
    for key in SUMMARY_KEYS:
        assert key in values, key
    assert float(values["val_bpb"]) > 0
    assert values["num_steps"] == "3" and values["depth"] == "2" and values["backend"] == "cpu"


def test_unknown_dataset_is_one_sentence():
    assert_one_sentence_error(cli("train", "dataset=nope", "preset=cpu"), "dataset")


def test_bare_word_instead_of_override_is_one_sentence():
    assert_one_sentence_error(cli("prepare", "bundled"), "key=value")


def test_unavailable_backend_is_one_sentence():
    proc = cli("train", "preset=cpu", env={"AUTORESEARCH_BACKEND": "cuda"})
    assert_one_sentence_error(proc, "cuda")


def test_bad_tag_is_one_sentence():
    assert_one_sentence_error(cli("run", "preset=cpu", "tag=../escape"), "tag")


def test_status_without_runs_says_how_to_start(tmp_path):
    proc = cli("status", f"paths.runs_dir={tmp_path}")
    assert proc.returncode == 0 and "autoresearch run" in proc.stdout


def test_status_reports_a_dead_run(tmp_path):
    from research.records.heartbeat import Heartbeat

    run_dir = tmp_path / "night"
    run_dir.mkdir()
    record = Heartbeat(run_dir / "heartbeat.json").beat("training", exp=3, best=1.5, counts={"keep": 1})
    # A pid that cannot be alive: the run's process is gone.
    import json

    record["pid"] = 2 ** 22 + 12345
    (run_dir / "heartbeat.json").write_text(json.dumps(record))
    proc = cli("status", "night", f"paths.runs_dir={tmp_path}")
    assert proc.returncode == 0
    assert "training" in proc.stdout and "gone" in proc.stdout.lower()


def _recorded_run(runs: Path, tag: str) -> Path:
    """A run folder as the loop leaves it: two baselines and one keep (model.depth 8 -> 10), ledger and repo."""
    import yaml

    from research.records.ledger import Ledger
    from research.records.runrepo import RunRepo

    run_dir = runs / tag
    hparams = yaml.safe_load((PROJECT_ROOT / "conf" / "hparams" / "default.yaml").read_text())
    repo = RunRepo(run_dir / "repo")
    base = repo.init(yaml.safe_dump(hparams))
    kept = repo.commit_experiment(2, yaml.safe_dump({**hparams, "model": {**hparams["model"], "depth": 10}}),
                                  "model.depth=10", base)
    repo.advance_main(kept)
    ledger = Ledger(run_dir / "results.tsv")
    for exp, val_bpb in ((0, 1.50), (1, 1.52)):
        ledger.record({"exp": exp, "status": "baseline", "val_bpb": val_bpb, "commit_sha": base})
    ledger.record({"exp": 2, "status": "keep", "val_bpb": 1.40, "best_val_bpb": 1.40, "change": "model.depth=10",
                   "key": "model.depth", "value": "10", "commit_sha": kept})
    return run_dir


def test_report_writes_the_report_of_a_recorded_run(tmp_path):
    run_dir = _recorded_run(tmp_path, "night")
    proc = cli("report", "night", f"paths.runs_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"report: {run_dir / 'report.md'}" in proc.stdout
    text = (run_dir / "report.md").read_text()
    assert "Experiments: 3 (1 keep, 0 discard, 0 crash, 0 skip, 2 baseline)" in text
    assert "Baseline val_bpb: 1.510000" in text and "Best val_bpb: 1.400000" in text
    assert "- `model.depth`: 8 -> 10" in text  # read back from the run repository
    assert (run_dir / "progress.png").stat().st_size > 10_000
    # Without a tag: the latest run; an unknown tag: one sentence, non-zero.
    assert cli("report", f"paths.runs_dir={tmp_path}").returncode == 0
    unknown = cli("report", "nope", f"paths.runs_dir={tmp_path}")
    assert unknown.returncode == 2 and unknown.stdout.strip() == f"error: no run 'nope' under {tmp_path}."


@pytest.mark.slow
def test_prepare_prints_the_verified_dataset(tmp_path):
    """`autoresearch prepare` on the bundled dataset: DVC brings it up to date, the summary matches its manifest."""
    import json

    proc = cli("prepare", "dataset=bundled")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    manifest = json.loads((PROJECT_ROOT / "datasets" / "bundled" / "shards" / "manifest.json").read_text())
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert lines["dataset"] == "bundled" and lines["data_version"] == manifest["data_version"]
    assert lines["vocab_size"] == str(manifest["vocab_size"])
    train = [shard["tokens"] for shard in manifest["shards"] if shard["split"] == "train"]
    assert lines["train"] == f"{len(train)} shards, {sum(train) / 1e6:.2f}M tokens"


def test_worker_without_a_server_or_with_no_room_is_one_sentence(tmp_path):
    no_server = {"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path)}  # no profile naming a server either
    assert_one_sentence_error(cli("worker", "--pool", "gpu", env=no_server), "needs a Prefect server")
    proc = cli("worker", "--limit", "0", env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert_one_sentence_error(proc, "--limit")
