"""Checkpoints live only as long as something needs them (train.keep_checkpoints), and a run killed at any
moment between training and its record never retrains a finished training because its checkpoint is gone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks import evaluate as evaluate_module
from tasks import train as train_module
from tasks.evaluate import run_evaluation
from tasks.train import run_training
from training.checkpoint import release_after_evaluation
from training.launch import ProcessResult, finished_training
from training.run_config import ExperimentDir


def experiment(tmp_path: Path, keep: bool | None = False, name: str = "exp") -> ExperimentDir:
    files = ExperimentDir(tmp_path / name)
    files.root.mkdir(parents=True)
    train = {"seq_len": 8} if keep is None else {"seq_len": 8, "keep_checkpoints": keep}
    files.config.write_text(json.dumps({"hparams": {}, "train": train, "budget": {}, "data": {}}))
    return files


def trained(files: ExperimentDir) -> None:
    files.metrics.write_text(json.dumps({"status": "ok", "steps": 3}))
    files.checkpoint.write_bytes(b"weights")


def scored(files: ExperimentDir, status: str = "ok") -> None:
    files.evaluation.write_text(json.dumps({"status": status, "val_bpb": 1.5, "reason": "broke"}))


class FakeChildren:
    """Stands in for training.launch.run_isolated: counts launches and writes what the real child would."""

    def __init__(self, monkeypatch):
        self.launched: list[str] = []
        monkeypatch.setattr(train_module, "run_isolated", self.run)
        monkeypatch.setattr(evaluate_module, "run_isolated", self.run)
        monkeypatch.setattr(train_module, "ensure_room", lambda *args: None)

    def run(self, module, exp_dir, log_path, *args, **kwargs):
        self.launched.append(module)
        files = ExperimentDir(exp_dir)
        if module == "training.entry":
            trained(files)
        else:
            scored(files)
        return ProcessResult(0, None, 0.1, "")


# --------------------------------------------------------------------------------------- what is deleted, when
@pytest.mark.parametrize("keep,status,deleted", [(False, "ok", True), (True, "ok", False), (None, "ok", True),
                                                 (False, "failed", False), (False, None, False)])
def test_a_checkpoint_is_released_only_after_a_recorded_score_unless_kept(tmp_path, keep, status, deleted):
    """keep None: a config.json written before the setting existed; status None: not evaluated yet."""
    files = experiment(tmp_path, keep)
    trained(files)
    if status:
        scored(files, status)
    assert release_after_evaluation(files.root) is deleted
    assert files.checkpoint.is_file() is not deleted


def test_an_unreadable_config_keeps_the_checkpoint(tmp_path):
    files = experiment(tmp_path)
    trained(files)
    scored(files)
    files.config.write_text("{not json")
    assert not release_after_evaluation(files.root) and files.checkpoint.is_file()


def test_finished_training_counts_a_released_checkpoint_only_when_scored(tmp_path):
    files = experiment(tmp_path)
    files.metrics.write_text(json.dumps({"status": "ok", "steps": 3}))
    assert finished_training(files.root) is None  # ok metrics, no checkpoint, no score: cut short, train again
    scored(files, "failed")
    assert finished_training(files.root) is None  # a failed evaluation deletes nothing: the weights were lost
    scored(files, "ok")
    assert finished_training(files.root)["steps"] == 3


def test_the_evaluation_task_deletes_the_checkpoint_it_scored(tmp_path, monkeypatch):
    children = FakeChildren(monkeypatch)
    files = experiment(tmp_path)
    assert run_training(str(files.root), None)["status"] == "ok"
    assert files.checkpoint.is_file()
    assert run_evaluation(str(files.root), 10.0)["status"] == "ok"
    assert not files.checkpoint.exists()
    assert children.launched == ["training.entry", "training.evaluate"]


def test_keep_checkpoints_true_keeps_it(tmp_path, monkeypatch):
    FakeChildren(monkeypatch)
    files = experiment(tmp_path, keep=True)
    run_training(str(files.root), None)
    run_evaluation(str(files.root), 10.0)
    assert files.checkpoint.read_bytes() == b"weights"


# ------------------------------------------------------------------- a run killed (kill -9) at every moment
@pytest.mark.parametrize("moment", ["trained", "scored", "released"])
def test_a_resumed_run_never_retrains_a_finished_training(tmp_path, monkeypatch, moment):
    """Killed after the training's metrics (checkpoint on disk, no score), after eval.json but before the
    deletion, or after the deletion but before the ledger row: the resume launches only what is missing, and
    every outcome is the first one."""
    children = FakeChildren(monkeypatch)
    files = experiment(tmp_path)
    trained(files)
    if moment in ("scored", "released"):
        scored(files)
    if moment == "released":
        files.checkpoint.unlink()
    metrics = run_training(str(files.root), None)
    evaluation = run_evaluation(str(files.root), 10.0)
    assert metrics["reused"] and metrics["steps"] == 3
    assert evaluation["status"] == "ok" and evaluation["reused"] is (moment != "trained")
    assert children.launched == (["training.evaluate"] if moment == "trained" else [])
    assert not files.checkpoint.exists()  # whichever moment it died at, the checkpoint is gone by the end


def test_a_training_cut_short_runs_again(tmp_path, monkeypatch):
    children = FakeChildren(monkeypatch)
    files = experiment(tmp_path)
    files.checkpoint.write_bytes(b"half")  # a checkpoint without metrics.json: the process died before recording
    run_training(str(files.root), None)
    assert children.launched == ["training.entry"]


# ------------------------------------------------------------------------------------- finalize: val and test
class FinalizeWorld:
    """flows.finalize.measure with the trainings and evaluations faked, for the checkpoint's lifetime."""

    def __init__(self, tmp_path, monkeypatch, keep: bool):
        import flows.finalize as finalize

        self.finalize, self.tmp = finalize, tmp_path
        self.children = FakeChildren(monkeypatch)
        self.test_scorings = 0
        monkeypatch.setattr(finalize, "has_test_split", lambda run_cfg: True)

        def evaluate(exp, directory, silence, cache_key, label):  # the host's evaluate step (experiment/steps.py)
            from training.launch import finished_metrics

            if finished_metrics(ExperimentDir(directory).evaluation) is None:  # to be scored: the arm's weights there
                self.test_scorings += 1
                assert ExperimentDir(directory).checkpoint.is_file(), "the test split is scored from the arm's weights"
            return run_evaluation(str(directory), silence)

        from types import SimpleNamespace

        from experiment.outcome import Outcome

        class Lifecycle:  # experiment.lifecycle.ExperimentLifecycle's part that finalize.measure uses
            cfg = {"train": {"keep_checkpoints": keep}, "budget": {"grace_seconds": 1}}
            run_id, run_info, steps = "r", {"code_version": "c"}, SimpleNamespace(evaluate=evaluate)

            def execute(life, setup):
                return Outcome(run_training(str(setup.directory), None), run_evaluation(str(setup.directory), 1.0))

        self.runner = Lifecycle()
        self.run_cfg = {"train": {"seq_len": 8}, "budget": {}, "backend": "cpu",
                        "data": {"shard_dir": "s", "tokenizer_dir": "t", "data_version": "v"}}

    def measure(self, arm_name: str = "final"):
        from types import SimpleNamespace

        arm = SimpleNamespace(name=arm_name, hparams={"seed": 1})
        return self.finalize.measure(self.runner, None, self.tmp, self.run_cfg, arm, 1000, 5)

    def arm(self, arm_name: str = "final") -> ExperimentDir:
        from research.records.layout import RunLayout

        return ExperimentDir(RunLayout(self.tmp).finalize_dir(arm_name, 1000))


@pytest.mark.parametrize("keep", [False, True])
def test_finalize_scores_val_and_test_from_one_checkpoint_then_releases_it(tmp_path, monkeypatch, keep):
    world = FinalizeWorld(tmp_path, monkeypatch, keep)
    row = world.measure()
    assert row["val_bpb"] == 1.5 and row["test_bpb"] == 1.5 and world.test_scorings == 1
    arm = world.arm()
    assert arm.checkpoint.is_file() is keep and ExperimentDir(arm.test_split).checkpoint.is_file() is keep


def test_an_arm_without_a_test_split_is_released_after_val(tmp_path, monkeypatch):
    world = FinalizeWorld(tmp_path, monkeypatch, keep=False)
    row = world.measure("without optim.matrix_lr")  # an ablation arm: scored on val only
    assert row["test_bpb"] is None and world.test_scorings == 0 and not world.arm("without optim.matrix_lr").checkpoint.exists()


def test_a_finalize_resumed_after_the_release_scores_nothing_again(tmp_path, monkeypatch):
    """Killed after both scores and the deletion, before the finalize.tsv row: measure again re-uses both scores
    (no link from a deleted checkpoint, no training)."""
    world = FinalizeWorld(tmp_path, monkeypatch, keep=False)
    world.measure()
    world.children.launched.clear()
    row = world.measure()
    assert row["val_bpb"] == 1.5 and row["test_bpb"] == 1.5 and world.children.launched == []
    assert world.test_scorings == 1
