"""Prefect settings this project needs on a machine with no network and a cold SQLite database.

Applied before Prefect is imported; a value the user already set wins.
"""
from __future__ import annotations

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


def configure_prefect_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
