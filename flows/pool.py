"""research.executor=pool: an experiment's training and evaluation run as a deployment on a Prefect work pool,
so several GPU machines can serve one research run (and several runs can share the machines).

    prefect work-pool create gpu --type process                      # once, on any machine
    autoresearch worker --pool gpu --limit 1                         # on each GPU host (one per GPU, see README)

The research flow creates (or updates) the `train-evaluate/<research.pool.deployment>` deployment on the pool
when it starts, then launches one flow run per experiment and waits for it. The outcome is read from the
experiment folder (metrics.json, eval.json), not from Prefect's result storage: runs and data live on a path
every worker reads (paths.runs_dir, paths.data_dir), at the same absolute path on every host.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.pool_watch import heartbeat, wait_for_pool_run
from flows.train_evaluate import train_then_evaluate
from tasks.gpu_slots import resolve_slots
from training.launch import finished_metrics, finished_training
from training.run_config import ExperimentDir

FLOW_NAME = "train-evaluate"


@flow(name=FLOW_NAME, flow_run_name="exp-{exp} {label}", log_prints=True)
def train_evaluate_flow(exp: int, exp_dir: str, train_deadline: float | None, eval_silence: float,
                        cache_key: str, label: str = "", slots: dict | None = None, backend: str = "auto",
                        train_silence: float | None = None) -> dict:
    """Runs on a worker: train, then evaluate, holding one of this host's devices for each."""
    from hardware import detect
    from prefect.runtime import flow_run

    # The first beat as early as possible: until it comes, the research flow counts the start as silence.
    with heartbeat(ExperimentDir(exp_dir).pool_heartbeat, flow_run.get_id()):
        resolved = resolve_slots(slots, detect(backend))  # this host's devices, not the orchestrator's
        metrics, evaluation = train_then_evaluate(exp, exp_dir, train_deadline, train_silence, eval_silence,
                                                  cache_key, label, resolved)
    return {"train": metrics.get("status"), "evaluate": (evaluation or {}).get("status")}


def require_server(what: str) -> None:
    from research.errors import ConfigurationError
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise ConfigurationError(
            f"{what} needs a Prefect server: start one with `prefect server start --host 127.0.0.1` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api.")


def ensure_pool_deployment(pool_cfg: dict) -> str:
    """Create or update the train-evaluate deployment on the pool; returns its `flow/deployment` name."""
    from research.errors import ConfigurationError
    from prefect.client.orchestration import get_client
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectNotFound

    require_server("research.executor=pool")
    pool = pool_cfg["name"]
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise ConfigurationError(
                f"There is no work pool '{pool}': create it with `prefect work-pool create {pool} --type process` "
                f"and start a worker on each GPU host with `autoresearch worker --pool {pool} --limit 1`.") from None
    # MODULE_PATH: workers import flows.pool from the installed project, wherever they were started.
    deployment = train_evaluate_flow.to_deployment(
        name=pool_cfg["deployment"], work_pool_name=pool, entrypoint_type=EntrypointType.MODULE_PATH,
        description="One autoresearch experiment: training, then evaluation (launched by the research flow).",
        tags=["autoresearch"])
    deployment.apply()
    return f"{FLOW_NAME}/{pool_cfg['deployment']}"


def _log(message: str) -> None:
    from prefect.logging import get_run_logger

    try:
        get_run_logger().warning(message)
    except Exception:  # noqa: BLE001 - outside a flow run (a plain call from a test): print instead
        print(message)


def _read_outcome(directory: Path) -> tuple[dict | None, dict | None]:
    files = ExperimentDir(directory)
    metrics = finished_training(directory)  # its checkpoint may be deleted after the evaluation
    evaluation = finished_metrics(files.evaluation) if metrics and metrics.get("status") == "ok" else None
    return metrics, evaluation


def run_on_pool(deployment: str, pool_cfg: dict, exp: int, exp_dir: str, train_deadline: float | None,
                eval_silence: float, cache_key: str, label: str, slots_cfg: dict | None,
                backend: str, train_silence: float | None = None) -> tuple[dict, dict | None]:
    """Launch the experiment on the pool, wait, and read its outcome from the experiment folder."""
    from prefect.deployments import run_deployment

    directory = Path(exp_dir)
    metrics, evaluation = _read_outcome(directory)
    if metrics is not None and (metrics.get("status") != "ok" or evaluation is not None):
        return {**metrics, "reused": True}, evaluation  # finished before a crash of this flow
    parameters = {"exp": exp, "exp_dir": exp_dir, "train_deadline": train_deadline, "eval_silence": eval_silence,
                  "cache_key": cache_key, "label": label, "slots": slots_cfg, "backend": backend,
                  "train_silence": train_silence}
    # The idempotency keys make a resumed research run wait for the pool runs it had already launched instead
    # of starting them again; a pool run that died without an outcome (a lost worker) is tried once more, under
    # a key just as fixed, so a resume during that second try waits for it too.
    flow_run = None
    for key in (cache_key, f"{cache_key}-relaunch"):
        launched = run_deployment(deployment, parameters=parameters, idempotency_key=key, timeout=0,
                                  job_variables=dict(pool_cfg.get("job_variables") or {}))
        flow_run = wait_for_pool_run(launched.id, ExperimentDir(directory).pool_heartbeat,
                                     float(pool_cfg.get("lost_after_seconds", 60)),
                                     float(pool_cfg.get("server_patience_seconds", 600)), _log)
        metrics, evaluation = _read_outcome(directory)
        if metrics is not None and (metrics.get("status") != "ok" or evaluation is not None):
            break  # a whole outcome; a run lost after its training is relaunched for the evaluation only
    state = flow_run.state.name if flow_run and flow_run.state else "unknown"
    if flow_run and flow_run.state and flow_run.state.message:
        state += f" ({flow_run.state.message.strip()[:200]})"  # e.g. a lost worker, in the crash row's reason
    if metrics is None:
        return {"status": "failed", "kind": "process",
                "reason": f"pool run {flow_run.name if flow_run else '?'} ended {state} without a training result"}, None
    if metrics.get("status") == "ok" and evaluation is None:
        evaluation = {"status": "failed", "reason": f"pool run {flow_run.name} ended {state} without an evaluation"}
    return metrics, evaluation
