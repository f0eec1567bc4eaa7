"""`autoresearch serve`: the deployments users launch from the Prefect UI, served by this process.

- `research/research`: one research run; tag, dataset, max_experiments, proposer and any Hydra overrides are
  parameters, editable in the UI's "Run" dialog.
- `suite/nightly-suite`: the suite (flows/suite.py) on the cron schedule of conf/suite/<name>.yaml, in its
  time zone (default: this machine's), 02:00 unless configured otherwise.

Runs execute here, in subprocesses of this command, with the environment it was started with. Deployment
definitions live here, apart from the flows, so importing a flow never registers anything.
"""
from __future__ import annotations

from flows.compose import compose

RESEARCH_DEPLOYMENT = "research"
SUITE_DEPLOYMENT = "nightly-suite"


def build_deployments(overrides: list[str] | None = None) -> list:
    """The RunnerDeployments to serve; `overrides` go to the nightly suite's runs (and pick its config)."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.research import research_flow
    from flows.suite import local_timezone_name, suite_flow

    overrides = list(overrides or [])
    suite = compose(overrides, auto=False)["suite"]
    timezone = suite["schedule"].get("timezone") or local_timezone_name()
    # MODULE_PATH: the runner's subprocesses import the flows from the installed project, whatever the cwd.
    research = research_flow.to_deployment(
        name=RESEARCH_DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH, tags=["autoresearch"],
        description="One research run. Set tag (a new tag starts a run, an existing one resumes it), dataset, "
                    "max_experiments, proposer, and any Hydra override as a list of key=value strings.")
    nightly = suite_flow.to_deployment(
        name=SUITE_DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH, tags=["autoresearch", "nightly"],
        schedules=[Cron(suite["schedule"]["cron"], timezone=timezone)],
        parameters={"overrides": overrides},
        description=f"The {suite['name']} suite over {', '.join(suite['datasets'])}, "
                    f"{suite['experiments_per_dataset']} experiments each, at '{suite['schedule']['cron']}' {timezone}.")
    return [research, nightly]


def serve_command(overrides: list[str]) -> int:
    from prefect import serve

    from flows.pool import require_server

    require_server("autoresearch serve")
    deployments = build_deployments(overrides)
    from prefect.settings import get_current_settings

    ui = (get_current_settings().ui_url or "").rstrip("/")
    print(f"serving {', '.join(f'{d.flow_name}/{d.name}' for d in deployments)}; Ctrl-C stops")
    if ui:
        print(f"launch a run: {ui}/deployments  (research -> Run -> Custom run)")
    bound_the_stop(deployments)
    serve(*deployments, print_starting_message=False)  # returns on Ctrl-C (SIGINT)
    pause_deployments(deployments)
    return 0


STOP_GRACE_SECONDS = 15.0  # Ctrl-C to exit: Prefect's own shutdown takes well under a second when nothing hangs


def bound_the_stop(deployments: list, grace: float = STOP_GRACE_SECONDS) -> None:
    """Make Ctrl-C stop serve within `grace` seconds, with the schedules paused.

    Prefect's shutdown can hang: in full test suites, serve asked to stop right after a served run finished
    outlasted 60 s and was SIGKILLed with the nightly schedule still active (where it waited was not found; the
    run's engine process was still alive at the SIGINT, and the exit-time drain of Prefect's log and event
    services was seen blocking). On the first SIGINT a watchdog thread starts; if
    the process is still here after `grace`, it pauses the schedules itself and ends the process. The SIGINT
    still raises KeyboardInterrupt as before, so a normal stop is unchanged.
    """
    import os
    import signal
    import threading

    def watchdog() -> None:
        import time

        time.sleep(grace)
        print(f"serve: Prefect's shutdown did not end {grace:g} s after Ctrl-C; pausing the schedules and exiting",
              flush=True)
        try:
            pause_deployments(deployments)
        finally:
            os._exit(130)

    def on_interrupt(signum, frame) -> None:
        if not any(thread.name == "serve-stop-watchdog" for thread in threading.enumerate()):
            threading.Thread(target=watchdog, name="serve-stop-watchdog", daemon=True).start()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_interrupt)


def pause_deployments(deployments: list) -> None:
    """Pause the served deployments, so no scheduled run waits for a server that is gone.

    Prefect's serve() means to do this on shutdown, but on Ctrl-C its event loop is cancelled before the pause
    request goes out (prefect 3.8: the deployments stayed active, tests/test_operate_server.py). A restart
    registers them again, unpaused: the schedule resumes.
    """
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for deployment in deployments:
            client.pause_deployment(client.read_deployment_by_name(f"{deployment.flow_name}/{deployment.name}").id)
