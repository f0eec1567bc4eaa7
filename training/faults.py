"""Explicit fault injection for reliability tests. Off unless config.json has a `fault` entry.

The orchestrator never sets it; tests and bench/chaos write it into an experiment's config to prove that
each failure ends as a recorded `crash` with its reason. Kinds:
  nan      the loss becomes NaN at `step`           exit     the process exits with `code` at `step`
  explode  the loss is multiplied by 1e6 at `step`  hang     the process sleeps forever at `step`
  oom      an out-of-memory error at `step`          segfault the process kills itself with SIGSEGV at `step`
  eval_hang  training runs normally; the evaluation process prints its first line, then hangs silently
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

KINDS = ("nan", "explode", "oom", "exit", "hang", "segfault", "eval_hang")


class InjectedOutOfMemory(MemoryError):
    """Stands in for a backend's out-of-memory error; handled exactly like one."""


@dataclass(frozen=True)
class Fault:
    kind: str
    step: int
    code: int = 3

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Fault | None":
        if not cfg:
            return None
        kind = cfg.get("kind")
        if isinstance(kind, float) and kind != kind:
            kind = "nan"  # Hydra reads a bare `fault={kind:nan}` as the float NaN
        if kind not in KINDS:
            raise ValueError(f"fault.kind must be one of {', '.join(KINDS)}, not {kind!r}.")
        return cls(kind=kind, step=int(cfg.get("step", 0)), code=int(cfg.get("code", 3)))

    def loss_factor(self, step: int) -> float:
        """Multiplier applied to the logged loss at this step (NaN or explosion), 1.0 otherwise."""
        if step != self.step:
            return 1.0
        if self.kind == "nan":
            return float("nan")
        if self.kind == "explode":
            return 1e6
        return 1.0

    def trigger_process_fault(self, step: int) -> None:
        """Faults that take the process itself down: out of memory, exit, hang, segfault."""
        if step != self.step:
            return
        if self.kind == "oom":
            raise InjectedOutOfMemory("injected out-of-memory fault")
        if self.kind == "exit":
            os._exit(self.code)
        if self.kind == "hang":
            while True:
                time.sleep(3600)
        if self.kind == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)

    def trigger_evaluation_fault(self) -> None:
        """In the evaluation process: one line (so it is not a start-up failure), then silence forever."""
        if self.kind == "eval_hang":
            print("eval: hanging (injected fault)", flush=True)
            while True:
                time.sleep(3600)
