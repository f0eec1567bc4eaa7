"""`autoresearch worker`: a work-pool worker whose flow runs start in a process that is already warm.

Prefect's process worker starts every flow run as `python -m prefect.engine`: a new interpreter that imports
Prefect and the project again, ~2 s per experiment on a quiet machine here and several times that under load
(BENCHMARKS.md, "Work pool overhead"). This worker is that same process worker, on the same `process` pool,
except for how it starts a run: a fork server (Python's `multiprocessing` forkserver) started with the worker
imports Prefect's engine, the train-evaluate flow and torch once, and every flow run is a fork of it. Each run
still gets a process of its own (a crash or a leak in one run cannot reach the next), with the worker's
environment, the job's `env` variables on top, and the exit code the worker reports as the process worker does.

    autoresearch worker --pool gpu --limit 1          # one per GPU, pinned by CUDA_VISIBLE_DEVICES

The price: the project's code is the one the worker imported when it started, so a host whose project is updated
needs its workers restarted. `prefect worker start --pool gpu` still works on the same pool and imports the
code per run; it is only slower to start each run.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import TYPE_CHECKING, Any

import anyio
from prefect.workers.process import ProcessWorker, ProcessWorkerResult

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.workers.process import ProcessJobConfiguration

# What a flow run imports, loaded once by the fork server: Prefect's engines and client, the flow with the
# project modules its tasks import inside their bodies, and torch, which the backend probe imports (0.9 s here).
# Importing torch starts no CUDA context, so the forks may still use the GPU; the trainings do it anyway in
# processes of their own. A module missing here is only imported later, per run.
PRELOAD = ["prefect.engine", "prefect.flow_engine", "prefect.task_engine", "prefect.client.orchestration",
           "prefect.runtime", "prefect.logging.handlers", "prefect.events.worker", "flows.pool", "hardware",
           "tasks.train", "tasks.evaluate", "tasks.gpu_slots", "training.launch", "torch"]

EXIT_POLL_SECONDS = 0.1  # how often the worker looks whether a run's process has ended


def _forkserver_context() -> multiprocessing.context.BaseContext:
    """The fork server where the platform has one (Linux, macOS); elsewhere a spawned process per run."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def execute_flow_run(flow_run_id: str, env: dict[str, str | None], working_dir: str | None) -> None:
    """In the forked process: the job's environment and working folder, fresh settings, then the engine."""
    from uuid import UUID

    from prefect.context import SettingsContext, get_settings_context
    from prefect.engine import handle_engine_signals
    from prefect.flow_engine import load_flow, load_flow_run, run_flow
    from prefect.settings import Settings

    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if working_dir:
        os.chdir(working_dir)
    run_id = UUID(flow_run_id)
    try:
        # The fork server read its settings when it started; the job's env (API URL, flow run id) wins here.
        with SettingsContext(profile=get_settings_context().profile, settings=Settings()):
            with handle_engine_signals(run_id):
                flow_run = load_flow_run(flow_run_id=run_id)
                run_flow(load_flow(flow_run), flow_run=flow_run)
    finally:
        _drain_to_server()


def _drain_to_server() -> None:
    """A forked process ends with os._exit, which skips atexit: send the run's last logs and events first."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=10)
        except Exception as exc:  # noqa: BLE001 - a server gone at exit costs log lines, not the run's outcome
            print(f"warm worker: could not send the last {worker.__name__} batch: {exc}", file=sys.stderr)


class WarmProcessWorker(ProcessWorker):
    """Prefect's process worker, starting each flow run as a fork of a warm process instead of a new Python."""

    @classmethod
    def __dispatch_key__(cls) -> str:
        # Same pool type ("process"), own registry key: Prefect's `process` worker stays the one it looks up.
        return "autoresearch-warm-process"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._context = _forkserver_context()

    async def setup(self) -> None:
        await super().setup()
        if self._context.get_start_method() == "forkserver":
            # Start the fork server (and its imports) now, not on the first run's clock.
            from multiprocessing import forkserver

            await anyio.to_thread.run_sync(forkserver.ensure_running)

    async def run(self, flow_run: "FlowRun", configuration: "ProcessJobConfiguration",
                  task_status: anyio.abc.TaskStatus[int] | None = None) -> ProcessWorkerResult:
        working_dir = str(configuration.working_dir) if configuration.working_dir else None
        process = self._context.Process(target=execute_flow_run, name=f"flow-run-{flow_run.id}",
                                        args=(str(flow_run.id), dict(configuration.env), working_dir))
        await anyio.to_thread.run_sync(process.start)
        if task_status is not None:
            task_status.started(process.pid)
        while process.exitcode is None:
            await anyio.sleep(EXIT_POLL_SECONDS)
        process.join()
        return ProcessWorkerResult(status_code=process.exitcode, identifier=str(process.pid))


def worker_command(pool: str, limit: int | None, name: str | None) -> int:
    """Run the worker until it is stopped (Ctrl-C, SIGTERM)."""
    worker = WarmProcessWorker(work_pool_name=pool, limit=limit, name=name)

    async def main() -> None:
        await worker.start()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        print(f"worker {worker.name} stopped", file=sys.stderr)
    return 0
