"""Tie the training process's life to the orchestrator that started it.

If the orchestrator is killed outright (kill -9, the OOM killer), a training left running would hold the GPU
and could still write a result the resumed run then trusts. On Linux the kernel sends us SIGKILL when our
parent dies (PR_SET_PDEATHSIG); elsewhere this is a no-op and the orchestrator's own process-group kill on a
clean stop is what ends us.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
