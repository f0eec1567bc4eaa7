"""Prefect settings this project needs on a machine with no network and a cold SQLite database.

Applied before Prefect is imported; a value the user already set wins.
"""
from __future__ import annotations

import logging
import os

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # A fresh temporary server takes ~20 s to start here, exactly Prefect's default timeout.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # INFO reaches the server (each run's Logs tab in the UI: proposals, training progress, verdicts) while the
    # terminal shows warnings only: the console handler filters on its own level, the API handler takes all.
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "DVC_NO_ANALYTICS": "1",
}


# A worker's terminal is where a GPU host's operator looks: the runs it takes and their progress, at INFO; and it
# asks for work every second (Prefect's 10 s would add ~5 s to every experiment).
COMMAND_DEFAULTS = {
    "worker": {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "1"},
}


# Prefect's two senders (logs, events) note "Still processing items: N items remaining..." at WARNING while a
# process exits and they drain: progress, not a problem (a failed send is logged at ERROR), and on a loaded
# machine it landed under a refused run's one-sentence error (CI, tests/test_reliability_run.py).
QUIET_UNTIL_ERROR = ("APILogWorker", "EventsWorker")


def configure_prefect_defaults(command: str | None = None) -> None:
    for name, value in {**DEFAULTS, **COMMAND_DEFAULTS.get(command or "", {})}.items():
        os.environ.setdefault(name, value)
    for sender in QUIET_UNTIL_ERROR:  # Prefect's logging setup keeps these levels (disable_existing_loggers: False)
        logging.getLogger(sender).setLevel(logging.ERROR)
