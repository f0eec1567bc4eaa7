"""The suite runs in a shuffled order (pytest-randomly): what one test changes for the whole process must not reach
the next. tests/conftest.py gives each test the session's environment and SIGTERM handler back; here an inner
pytest session with that conftest runs a test that changes both, as cli.main.main does in-process, then one that
must not see it."""
from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]

LEAKY_THEN_CLEAN = '''
import os
import signal

SESSION_SIGTERM = signal.getsignal(signal.SIGTERM)


def test_one_calls_the_cli_s_prefect_defaults_and_a_handler_in_process():
    from prefect_ops.prefect_env import configure_prefect_defaults

    configure_prefect_defaults("worker")  # cli.main.main's first step: os.environ.setdefault(...)
    assert os.environ["PREFECT_WORKER_QUERY_SECONDS"] == "1"
    os.environ["PREFECT_HOME"] = "/elsewhere"
    signal.signal(signal.SIGTERM, lambda *_: None)  # as `autoresearch run` does


def test_two_after_it_sees_the_session_as_it_was():
    assert "PREFECT_WORKER_QUERY_SECONDS" not in os.environ
    assert os.environ["PREFECT_HOME"] != "/elsewhere"
    assert signal.getsignal(signal.SIGTERM) is SESSION_SIGTERM
'''


def test_a_test_s_environment_and_sigterm_handler_do_not_reach_the_next(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))  # the inner session imports the project
    monkeypatch.delenv("PREFECT_WORKER_QUERY_SECONDS", raising=False)
    pytester.makeconftest((PROJECT_ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_order=LEAKY_THEN_CLEAN)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
