"""`autoresearch serve` stops within a bound after Ctrl-C, with the schedules paused, even when Prefect's own
shutdown hangs (as it did in full suites, after a served run): prefect_ops/serve.py's watchdog."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import prefect_ops.serve as serve_module


def test_a_hung_shutdown_is_ended_after_the_grace_with_the_schedules_paused(monkeypatch):
    paused, exits = [], []
    done = threading.Event()
    monkeypatch.setattr(serve_module, "pause_deployments", lambda deployments: paused.append(list(deployments)))

    def fake_exit(code):
        exits.append(code)
        done.set()

    monkeypatch.setattr(os, "_exit", fake_exit)
    previous = signal.getsignal(signal.SIGINT)
    try:
        serve_module.bound_the_stop(["research", "nightly-suite"], grace=0.2)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C still interrupts the main thread as before
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        # the main thread now "hangs" in Prefect's shutdown: the watchdog ends it
        assert done.wait(5), "the watchdog never ended the process"
        assert time.monotonic() - started >= 0.2
        assert paused == [["research", "nightly-suite"]] and exits == [130]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_that_ends_in_time_is_left_alone(monkeypatch):
    exits = []
    monkeypatch.setattr(serve_module, "pause_deployments", lambda deployments: None)
    monkeypatch.setattr(os, "_exit", exits.append)
    previous = signal.getsignal(signal.SIGINT)
    try:
        serve_module.bound_the_stop([], grace=0.3)
        # no Ctrl-C: no watchdog runs, nothing ends the process
        time.sleep(0.5)
        assert exits == [] and not any(t.name == "serve-stop-watchdog" for t in threading.enumerate())
    finally:
        signal.signal(signal.SIGINT, previous)
