"""Evaluate task: a fresh `python -m training.evaluate EXP_DIR` process scores the checkpoint (val_bpb).

No total deadline: scoring a big model may take minutes. The process prints progress and is killed as hung
only after `silence_seconds` without a line (training.launch.run_isolated).

Once the score is recorded (eval.json ok), nothing needs the checkpoint: it is deleted here unless the folder's
config.json says `train.keep_checkpoints: true` (conf/config.yaml; finalize keeps an arm's until its test split
is scored too). training.launch.finished_training counts such a training as finished, so a resumed run never
trains it again. A failed evaluation keeps the checkpoint, for whoever looks into it."""
from __future__ import annotations

from prefect import task

from experiment.progress_lines import evaluation_progress, relay
from training.checkpoint import release_after_evaluation
from training.launch import finished_metrics, run_isolated
from training.run_config import ExperimentDir


def run_evaluation(exp_dir: str, silence_seconds: float, on_line=None) -> dict:
    files = ExperimentDir(exp_dir)
    done = finished_metrics(files.evaluation)
    if done is not None:
        release_after_evaluation(files.root)  # a run killed between the score and the deletion deletes it now
        return {**done, "reused": True}
    result = run_isolated("training.evaluate", files.root, files.eval_log, None, on_line,
                          silence_seconds=silence_seconds)
    result.raise_if_disk_full(files.root)
    outcome = finished_metrics(files.evaluation)
    if outcome is None:
        outcome = {"status": "failed", "reason": f"evaluation {result.describe_failure()}"}
    release_after_evaluation(files.root)
    outcome["reused"] = False
    outcome["process_seconds"] = result.seconds
    return outcome


@task(name="evaluate", task_run_name="exp-{exp} evaluate {label}", persist_result=True,
      cache_key_fn=lambda context, parameters: parameters["cache_key"])
def evaluate_task(exp: int, exp_dir: str, silence_seconds: float, cache_key: str, label: str = "",
                  slots: dict | None = None) -> dict:
    """Evaluation runs on an accelerator too, so it holds a device like a training does."""
    from prefect.logging import get_run_logger

    from tasks.gpu_slots import device_slot

    logger = get_run_logger()
    if finished_metrics(ExperimentDir(exp_dir).evaluation) is not None:
        return run_evaluation(exp_dir, silence_seconds)
    # The process's own lines (throttled progress, then `val_bpb: ...`) go to the run's Logs tab in the UI.
    with device_slot(slots, "evaluate", exp_dir, logger.info):
        return run_evaluation(exp_dir, silence_seconds, relay(evaluation_progress, exp, label, logger.info))
