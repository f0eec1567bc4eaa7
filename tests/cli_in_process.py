"""`autoresearch COMMAND ...` run inside the test process, for a resume or a last step that nobody kills.

The same entry point as `python -m cli.main` (argument parsing, the command, the one-sentence errors, the exit
code), without a new Python process and the temporary Prefect server each such process starts (~15 s on 2 busy
cores): the run talks to the test session's temporary server instead. A test that kills a run still starts that
run as a process of its own; only what comes after the kill runs here.

No capsys: Prefect's console handler keeps the stderr it was created with, and when a capsys test is the first to
import Prefect that stream is closed before the session ends, where Prefect logs the stop of its temporary server.
What the command prints stays in pytest's own capture (shown with a failure) and is returned for reading.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path


class _Tee(io.TextIOBase):
    """stdout for the command: what it prints goes on to the real stdout and is kept. Not a terminal, as a pipe."""

    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def run_cli(args: list[str], result_store: Path | None = None) -> tuple[int, str]:
    """cli.main.main(args) -> (exit code, its stdout). With result_store, Prefect's task results go to (and are looked
    up in) that folder only, as PREFECT_RESULTS_LOCAL_STORAGE_PATH does for a process of its own."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    from cli.main import main

    store = (temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(result_store)})
             if result_store is not None else contextlib.nullcontext())
    out = _Tee(sys.stdout)
    with store, contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.kept.getvalue()


def holds_results(result_store: Path) -> bool:
    """The folder received task results: the run stored what it computed there, not in the session's store."""
    return result_store.is_dir() and any(path.is_file() for path in result_store.rglob("*"))
