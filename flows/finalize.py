"""`autoresearch finalize TAG`: re-measure a run's outcome on fresh seeds (research/judging/finalize.py says what and
concludes; this flow trains and records).

Every arm trains with the run's own training settings (exp/0/config.json: budget, sizes, data), only the block
and the seed change; baseline and final are also scored on the held-out test split where the dataset has one
(train.eval_split=test, the same checkpoint). Each (arm, seed) training is an ordinary train + evaluate task pair with its own cache key,
under runs/<tag>/finalize/<arm>/<seed>/, and becomes one row of runs/<tag>/finalize.tsv once it is scored. A
finalize killed at any moment (kill -9 included) resumes with the same command: recorded rows are not trained
again, a finished training is re-used from its folder, only the one cut off runs again.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml
from prefect import flow

from common.atomic import atomic_write_text
from flows.compose import CONF_DIR, compose, run_layout
from experiment.lifecycle import ExperimentLifecycle, RunContext
from experiment.setup import ExperimentSetup
from flows.steps import PrefectSteps
from research.errors import ResearchStopped
from research.judging.finalize import fresh_seeds, plan_arms, summarize, trainings_needed, verified_markdown
from research.records.finalize_table import FinalizeTable
from research.records.heartbeat import Heartbeat
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from research.records.runlock import RunLock
from research.records.run_id import ensure_run_id
from research.records.runrepo import RunRepo
from research.proposing.space import load_space
from research.records.state import derive_state
from tasks.run_log import send_logs_now
from training.run_config import ExperimentDir, code_version, config_hash, training_config, write_training_config

TEST_ARMS = ("baseline", "final")  # scored on the held-out test split too, when the dataset has one


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return f"finalize-{flow_run.parameters.get('tag')}"


@flow(name="finalize", flow_run_name=_flow_run_name, log_prints=True)
def finalize_flow(tag: str, overrides: list[str] | None = None) -> dict:
    """Re-measure run `tag`: baseline vs final block, and each kept change left out, on fresh paired seeds."""
    try:
        cfg = compose([*(overrides or []), f"tag={tag}"])
        return run_finalize(cfg, tag)
    finally:
        send_logs_now()


def load_run(run_dir: Path, tag: str) -> tuple[list[dict], dict]:
    """The run's rows and its resolved training config, or one sentence saying why finalize cannot start."""
    layout = RunLayout(run_dir)
    rows = Ledger(layout.results).rows()
    base_config = ExperimentDir(layout.exp_dir(0)).config
    if not any(row.get("status") == "baseline" for row in rows) or not base_config.is_file():
        raise ResearchStopped(f"Run '{tag}' has no recorded baseline under {run_dir}; run it first "
                              f"(`autoresearch run tag={tag}`) or check paths.runs_dir.")
    run_cfg = json.loads(base_config.read_text())
    if not Path(run_cfg["data"]["shard_dir"]).is_dir():
        raise ResearchStopped(f"The data run '{tag}' trained on is gone ({run_cfg['data']['shard_dir']}); "
                              f"rebuild it with `autoresearch prepare dataset={rows[0].get('dataset')}`.")
    return rows, run_cfg


def plan(cfg: dict, tag: str):
    """Everything finalize will do for run `tag`, before any training: (run_dir, rows, run_cfg, keep rows, arms,
    notes, seeds)."""
    run_dir = run_layout(cfg, tag).root
    rows, run_cfg = load_run(run_dir, tag)
    repo = RunRepo(RunLayout(run_dir).repo)
    keep_rows = [row for row in rows if row.get("status") == "keep"]
    keeps = [(row, yaml.safe_load(repo.show(row["exp"]))) for row in keep_rows]
    arms, notes = plan_arms(yaml.safe_load(repo.show(0)), keeps, bool(cfg["finalize"]["ablation"]))
    return run_dir, rows, run_cfg, keep_rows, arms, notes, fresh_seeds(cfg["finalize"]["first_seed"], cfg["finalize"]["seeds"])


def cost_line(cfg: dict, tag: str) -> str:
    """What finalize costs, in trainings: printed before it starts."""
    run_dir, _, _, _, arms, _, seeds = plan(cfg, tag)
    return describe_cost(tag, run_dir, arms, seeds)


def describe_cost(tag: str, run_dir: Path, arms: list, seeds: list[int]) -> str:
    needed = trainings_needed(arms, len(seeds))
    names = {arm.name for arm in arms}
    done = sum(1 for r in FinalizeTable(RunLayout(run_dir).finalize_table).rows() if r["arm"] in names and r["seed"] in seeds)
    return (f"finalize {tag}: {len(arms)} arms ({', '.join(arm.name for arm in arms)}) x {len(seeds)} seeds = "
            f"{needed} trainings, {needed - done} still to run")


def run_finalize(cfg: dict, tag: str) -> dict:
    run_dir, rows, run_cfg, keep_rows, arms, notes, seeds = plan(cfg, tag)
    settings = cfg["finalize"]
    layout = RunLayout(run_dir)
    repo = RunRepo(layout.repo)
    table = FinalizeTable(layout.finalize_table)
    print(describe_cost(tag, run_dir, arms, seeds))
    with RunLock(run_dir, tag):
        life = _lifecycle(cfg, run_dir, tag, rows, run_cfg, repo)
        state = derive_state(rows, repo, yaml.safe_load(repo.show(0)), life.space)
        for seed in seeds:  # seed by seed: a finalize cut short still holds complete pairs
            for arm in arms:
                if arm.same_as is None and not table.has(arm.name, seed):
                    table.record(measure(life, state, run_dir, run_cfg, arm, seed, len(rows)))
        summary = summarize(arms, table.rows(), keep_rows, float(settings["z"]))
        markdown = verified_markdown(summary, notes, seeds, float(settings["z"]))
        atomic_write_text(layout.verified, markdown)
        from experiment.record import write_run_report

        report, _ = write_run_report(run_dir)
        publish_verified(tag, markdown, table.rows())
    print(markdown)
    return {"run_dir": str(run_dir), "report": str(report), "trainings": trainings_needed(arms, len(seeds)),
            "gain": summary["gain"].mean, "gain_se": summary["gain"].se}


def _lifecycle(cfg: dict, run_dir: Path, tag: str, rows: list[dict], run_cfg: dict, repo: RunRepo) -> ExperimentLifecycle:
    """The research flow's experiment lifecycle and steps, so a finalize training goes the same way (slots, work
    pool, deadlines), with the run's own budget."""
    cfg = {**cfg, "budget": run_cfg["budget"]}
    data = {**run_cfg["data"]}
    run_info = {"dataset": rows[0].get("dataset"), "data_version": data.get("data_version"),
                "code_version": code_version(), "proposer": None}
    run = RunContext(cfg, run_dir, ensure_run_id(run_dir), repo, load_space(CONF_DIR / "space.yaml"), data, run_info,
                     Heartbeat(RunLayout(run_dir).heartbeat, tag))
    return ExperimentLifecycle(run, PrefectSteps(cfg))


def measure(life: ExperimentLifecycle, state, run_dir: Path, run_cfg: dict, arm, seed: int, exp: int) -> dict:
    """Train and score one arm on one seed; the finalize.tsv row."""
    directory = RunLayout(run_dir).finalize_dir(arm.name, seed)
    directory.mkdir(parents=True, exist_ok=True)
    keep = bool(life.cfg["train"].get("keep_checkpoints", False))
    on_test = arm.name in TEST_ARMS and has_test_split(run_cfg)
    # An arm scored on the test split too keeps its checkpoint past the val evaluation; released after the test.
    train = {**run_cfg["train"], "keep_checkpoints": keep or on_test}
    config = training_config({"train": train, "budget": run_cfg["budget"], "backend": run_cfg["backend"]},
                             arm.hparams, seed, run_cfg["data"], run_cfg.get("fault"))
    write_training_config(directory, config)
    key = f"{life.run_id}-finalize-{arm.name}-{seed}-{config_hash(config)}-{life.run_info['code_version']}"
    setup = ExperimentSetup(exp, state, directory, None, "", seed, 0.0, False, f"finalize {arm.name}",
                            key)
    outcome = life.execute(setup)
    metrics, evaluation = outcome.metrics or {}, outcome.evaluation
    ok = metrics.get("status") == "ok" and evaluation and evaluation.get("status") == "ok"
    error = None if ok else (evaluation or metrics or {}).get("reason", "training failed")
    test_bpb = None
    if ok and on_test:
        test_bpb = score_test(life, setup, config, keep)
        if not keep:  # both splits scored: nothing needs the weights now
            ExperimentDir(directory).checkpoint.unlink(missing_ok=True)
    return {"arm": arm.name, "seed": seed, "val_bpb": evaluation.get("val_bpb") if ok else None, "test_bpb": test_bpb,
            "steps": metrics.get("steps"), "error": error, "config_hash": config_hash(config)}


def has_test_split(run_cfg: dict) -> bool:
    from data.shards import read_manifest

    return bool(read_manifest(run_cfg["data"]["shard_dir"]).get("tokens", {}).get("test"))


def score_test(life: ExperimentLifecycle, setup: ExperimentSetup, config: dict, keep: bool = False) -> float | None:
    """The same checkpoint scored on the held-out test split, in <arm>/<seed>/test/ (its own cached task)."""
    from training.launch import finished_metrics

    directory = ExperimentDir(setup.directory).test_split
    directory.mkdir(parents=True, exist_ok=True)
    write_training_config(directory, {**config, "train": {**config["train"], "eval_split": "test",
                                                          "keep_checkpoints": keep}})
    trained, checkpoint = ExperimentDir(setup.directory).checkpoint, ExperimentDir(directory).checkpoint
    # Scored already (a finalize resumed after it): the arm's checkpoint may be gone, and is not needed.
    if not checkpoint.is_file() and finished_metrics(ExperimentDir(directory).evaluation) is None:
        try:
            os.link(trained, checkpoint)  # no copy of the weights where links work
        except OSError:
            shutil.copy2(trained, checkpoint)
    silence = float(life.cfg["budget"]["grace_seconds"]) * 2
    evaluation = life.steps.evaluate(setup.exp, directory, silence, f"{setup.key}-test", f"{setup.label} test split")
    return float(evaluation["val_bpb"]) if evaluation.get("status") == "ok" else None


def publish_verified(tag: str, markdown: str, records: list[dict]) -> None:
    """The Verified section and the finalize table in the Prefect UI (inside a flow run only)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext

    from tasks.artifacts import artifact_key

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(key=artifact_key(tag, "verified"), markdown=markdown, description=f"finalize of run {tag}")
    create_table_artifact(key=artifact_key(tag, "finalize"), table=records, description=f"finalize.tsv of run {tag}")
