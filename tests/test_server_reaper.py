"""prefect_ops/server_reaper.py: a SIGKILLed orchestrator's temporary Prefect server is ended, nothing else is.

A sleeping Python process stands in for the server (the reaper recognises a server by `uvicorn` on its
command line) and another for the orchestrator, which starts the real reaper the way the CLI does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefect_ops import server_reaper

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATOR = ("import os, subprocess, sys, time; "
                "subprocess.Popen([sys.executable, '-m', 'prefect_ops.server_reaper', str(os.getpid()), sys.argv[1]]); "
                "time.sleep(120)")


def start_sleeper(*marker: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *marker])


def start_orchestrator(server_pid: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ORCHESTRATOR, str(server_pid)], cwd=ROOT)


def exit_code_within(proc: subprocess.Popen, seconds: float) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server check reads /proc")
def test_a_killed_orchestrators_server_is_terminated():
    server = start_sleeper("uvicorn")
    orchestrator = start_orchestrator(server.pid)
    try:
        assert exit_code_within(server, 2.0) is None, "the reaper must leave the server alone while its parent lives"
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait()
        assert exit_code_within(server, 10.0) == -signal.SIGTERM
    finally:
        for proc in (server, orchestrator):
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server check reads /proc")
def test_a_process_that_is_not_a_server_is_left_alone():
    stranger = start_sleeper("not-a-server")
    orchestrator = start_orchestrator(stranger.pid)
    try:
        time.sleep(0.5)  # the reaper is up
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait()
        assert exit_code_within(stranger, 3.0) is None
    finally:
        for proc in (stranger, orchestrator):
            proc.kill()
            proc.wait()


def test_the_reaper_refuses_arguments_that_are_not_two_pids(capsys):
    assert server_reaper.main(["12", "x"]) == 2
    assert "usage: python -m prefect_ops.server_reaper" in capsys.readouterr().err


def test_no_reaper_when_prefect_api_url_names_a_real_server():
    # Through Prefect's settings context, which is what its client reads too: once Prefect is imported, a
    # changed environment variable alone no longer moves the current settings.
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert server_reaper.tie_temporary_server_to_us() is None


def test_gone_pids_and_zombies_are_not_the_server():
    proc = subprocess.Popen([sys.executable, "-c", "pass", "uvicorn"])
    # Wait for its exit without reaping it (WNOWAIT): a zombie now, whose /proc/PID/cmdline is empty.
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    assert not server_reaper.looks_like_the_server(proc.pid)
    proc.wait()
    assert not server_reaper.looks_like_the_server(proc.pid)
    assert server_reaper.looks_like_the_server(os.getpid()) == (not sys.platform.startswith("linux"))
