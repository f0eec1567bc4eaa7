"""The research flow end to end on a tiny model: rows, run repository, heartbeat, report, resume after kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from research.records.ledger import Ledger
from research.records.runrepo import RunRepo
from tests.cli_in_process import run_cli
from tests.fake_anthropic import FakeAnthropic, tool_answer

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# A tiny model on the bundled dataset (vocab 8192): seconds per experiment on 2 cores.
TINY_RUN = [
    "preset=cpu", "hparams.model.depth=2", "hparams.model.aspect_ratio=32", "hparams.model.head_dim=32",
    "hparams.batch.device_batch_size=8", "hparams.batch.total_batch_tokens=1024", "train.seq_len=128",
    "train.eval_tokens=4096", "train.eval_batch_size=8", "budget.kind=steps", "budget.steps=4",
    "decide.baseline_repeats=2",
]


def train_starts(exp_dir: Path) -> int:
    """How many times training began in this folder (train.log is appended to on every attempt)."""
    log = exp_dir / "train.log"
    return log.read_text().count("step     1 |") if log.is_file() else 0


@pytest.mark.slow
def test_research_flow_records_every_experiment_and_resumes_without_redoing(tmp_path):
    from flows.research import research_flow

    overrides = TINY_RUN + [f"paths.runs_dir={tmp_path}", "tag=e2e", "proposer=local", "research.max_experiments=4"]
    summary = research_flow(overrides=overrides)
    run_dir = tmp_path / "e2e"
    assert summary["rows"] == 4 and Path(summary["report"]).is_file() and Path(summary["plot"]).is_file()

    rows = Ledger(run_dir / "results.tsv").rows()
    assert [row["exp"] for row in rows] == [0, 1, 2, 3]
    assert [row["status"] for row in rows[:2]] == ["baseline", "baseline"]
    # Each proposal was trained for its 4 steps, evaluated and judged: a crash or skip would hide a broken loop.
    assert all(row["status"] in ("keep", "discard") and row["steps"] == 4 and row["val_bpb"] > 0 and row["change"]
               for row in rows[2:]), rows[2:]
    for row in rows:
        assert row["dataset"] == "bundled" and row["data_version"] and row["code_version"]
    frame = pd.read_csv(run_dir / "results.tsv", sep="\t")
    assert list(frame["exp"]) == [0, 1, 2, 3]
    for column in ("exp", "description", "val_bpb", "mfu", "status", "baseline_sha"):
        assert column in frame.columns

    repo = RunRepo(run_dir / "repo")
    for row in rows[1:]:
        assert repo.tag_sha(row["exp"]) == row["commit_sha"]
        committed = repo.show(row["exp"])
        config = json.loads((run_dir / "exp" / str(row["exp"]) / "config.json").read_text())
        import yaml

        # The committed block is what trained, apart from the seed: a candidate's first run takes the incumbent's
        # most recent seed (the row's `seed`), the block keeps the run's base seed.
        assert {**yaml.safe_load(committed), "seed": row["seed"]} == config["hparams"]
    keeps = [row for row in rows if row["status"] == "keep"]
    assert repo.main_sha() == (keeps[-1]["commit_sha"] if keeps else repo.tag_sha(0))

    heartbeat = json.loads((run_dir / "heartbeat.json").read_text())
    assert heartbeat["phase"] == "done" and sum(heartbeat["counts"].values()) == 4

    # The same command again: the run is complete, nothing is trained or recorded twice.
    again = research_flow(overrides=overrides)
    assert again["rows"] == 4
    assert [train_starts(run_dir / "exp" / str(n)) for n in range(4)] == [1, 1, 1, 1]

    # Raising the limit resumes the run: exactly one more experiment, numbered 4.
    more = research_flow(overrides=overrides[:-1] + ["research.max_experiments=5"])
    assert more["rows"] == 5
    assert [row["exp"] for row in Ledger(run_dir / "results.tsv").rows()] == [0, 1, 2, 3, 4]


def _heartbeat(run_dir: Path) -> str:
    path = run_dir / "heartbeat.json"
    return path.read_text() if path.is_file() else "none"


def _wait_for(predicate, timeout: float, describe):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {describe()}")


@pytest.mark.slow
def test_kill_9_during_training_loses_nothing_and_repeats_no_llm_call(tmp_path, monkeypatch):
    proposals = [
        {"key": "optim.matrix_lr", "value": 0.05, "description": "raise the Muon LR", "reasoning": "short runs"},
        {"key": "schedule.warmdown_frac", "value": 0.3, "description": "shorter cooldown", "reasoning": "more peak"},
    ]
    run_dir = tmp_path / "killed"
    with FakeAnthropic([tool_answer(p) for p in proposals]) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-test-sentinel"}
        # One pair per candidate (its first run): an undecided one would otherwise train up to 5 more pairs here,
        # which tests/test_flow_paired_kill.py covers under a kill. 20 steps, as there: the kill lands within 0.2 s
        # of exp 2's first step, and the [1, 1, 2, 1] below fails if it came after that training (60 steps made
        # every one of the 5 trainings three times longer).
        command = [sys.executable, "-m", "cli.main", "run", *TINY_RUN, "budget.steps=20", "proposer=claude",
                   f"proposer.base_url={fake.base_url}", "proposer.max_retries=0", f"paths.runs_dir={tmp_path}",
                   "tag=killed", "research.max_experiments=4", "decide.sequential.max_pairs=1"]
        first = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True,
                                 stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT)
        try:
            # Kill while exp2 (the first proposal) is training, once it has logged its first step.
            _wait_for(lambda: train_starts(run_dir / "exp" / "2") >= 1, 400,
                      lambda: f"exp2 to start training; heartbeat: {_heartbeat(run_dir)}; exit code: {first.poll()}")
            os.killpg(first.pid, signal.SIGKILL)
        finally:
            first.wait()
        assert Ledger(run_dir / "results.tsv").exps() == {0, 1}

        # The same command again, in this process (tests/cli_in_process.py): nobody kills the resume.
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-sentinel")
        code, _ = run_cli(command[3:])
        assert code == 0
        assert len(fake.message_requests()) == 2, "an LLM call was repeated after the kill"

    rows = Ledger(run_dir / "results.tsv").rows()
    assert [row["exp"] for row in rows] == [0, 1, 2, 3]
    assert [row["change"] for row in rows[2:]] == ["optim.matrix_lr=0.05", "schedule.warmdown_frac=0.3"]
    # Finished trainings were re-used; only the one cut by the kill ran again.
    assert [train_starts(run_dir / "exp" / str(n)) for n in range(4)] == [1, 1, 2, 1]
    assert "sk-ant-test-sentinel" not in (run_dir / "results.tsv").read_text()


@pytest.mark.slow
def test_sigterm_stops_the_run_cleanly_and_kills_the_training(tmp_path):
    run_dir = tmp_path / "term"
    command = [sys.executable, "-m", "cli.main", "run", *TINY_RUN, "budget.steps=2000", "proposer=local",
               f"paths.runs_dir={tmp_path}", "tag=term", "research.max_experiments=3"]
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: train_starts(run_dir / "exp" / "0") >= 1, 400,
              lambda: f"exp0 to start training; heartbeat: {_heartbeat(run_dir)}; exit code: {proc.poll()}")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "run the same command again to resume" in stderr
    assert json.loads((run_dir / "heartbeat.json").read_text())["phase"] == "stopped"
    # The training child died with the orchestrator: no process still has the experiment folder open.
    leftovers = subprocess.run(["pgrep", "-f", f"training.entry {run_dir}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


@pytest.mark.slow
def test_an_undecided_candidate_gets_paired_seeds_and_the_incumbent_runs_the_seeds_it_lacks(tmp_path):
    from flows.research import research_flow

    # A tiny tested effect keeps the SPRT undecided, so every candidate is paired up to the cap of 3 seeds.
    overrides = TINY_RUN + [f"paths.runs_dir={tmp_path}", "tag=paired", "proposer=local", "research.max_experiments=4",
                            "decide.sequential.effect=0.0001", "decide.sequential.max_pairs=3"]
    research_flow(overrides=overrides)
    run_dir = tmp_path / "paired"
    rows = Ledger(run_dir / "results.tsv").rows()
    first = rows[2]
    assert first["status"] == "discard" and "cap" in first["verdict"] and first["paired_exp"] == 0
    assert first["paired_seeds"] == "42 43 44"
    # Its figures from what was recorded: the mean difference to the incumbent on the three seeds (the baselines ran
    # 42 and 43, this pair ran the incumbent's 44), and its standard error, the paired sd the verdict states (to 6
    # decimals) over sqrt(3 pairs).
    import math
    import re

    def runs(text):
        return {int(seed): float(value) for seed, value in (item.split(":") for item in text.split())}

    incumbent = {**runs(rows[0]["seed_runs"]), **runs(rows[1]["seed_runs"]), **runs(first["incumbent_runs"])}
    candidate = runs(first["seed_runs"])
    mean = sum(candidate[seed] - incumbent[seed] for seed in (42, 43, 44)) / 3
    assert first["paired_delta"] == pytest.approx(mean, abs=1e-12)
    sd = float(re.search(r"paired sd (\d+\.\d{6})", first["verdict"]).group(1))
    assert first["paired_se"] == pytest.approx(sd / math.sqrt(3), abs=0.5e-6 / math.sqrt(3))
    assert first["incumbent_runs"].startswith("44:")  # the baselines ran 42 and 43; 44 was new to the incumbent
    seed_44 = json.loads((run_dir / "exp" / "2" / "seed-44" / "config.json").read_text())["hparams"]
    incumbent_44 = json.loads((run_dir / "exp" / "2" / "incumbent-44" / "config.json").read_text())["hparams"]
    assert seed_44["seed"] == incumbent_44["seed"] == 44 and seed_44 != incumbent_44
    # The next candidate pairs on the same three seeds and finds the incumbent's 44 already run.
    assert rows[3]["paired_seeds"] == "42 43 44" and rows[3]["incumbent_runs"] is None
    assert not (run_dir / "exp" / "3" / "incumbent-44").exists()
    # Run again: every paired training is re-used, none repeated.
    research_flow(overrides=overrides)
    assert train_starts(run_dir / "exp" / "2" / "seed-42") == 1 and train_starts(run_dir / "exp" / "2" / "incumbent-44") == 1
