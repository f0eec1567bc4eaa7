"""Progress output of the training process: a live bar on a terminal, throttled plain lines in a log.

The orchestrator tails train.log, so plain lines must be informative on their own and not flood it.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_label: str, every_seconds: float = 5.0, stream=None):
        self.stream = stream or sys.stdout
        self.is_tty = self.stream.isatty()
        self.every_seconds = every_seconds
        self.total_label = total_label
        self._last_print = 0.0

    def update(self, step: int, progress: float, loss: float, tokens_per_second: float, elapsed: float) -> None:
        now = time.monotonic()
        line = (
            f"step {step:5d} | {100 * progress:5.1f}% of {self.total_label} | loss {loss:.4f} | "
            f"{tokens_per_second / 1e3:8.1f}k tok/s | {elapsed:6.1f}s"
        )
        if self.is_tty:
            width = 30
            filled = int(width * progress)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}")
            self.stream.flush()
        elif now - self._last_print >= self.every_seconds or step == 1:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now

    def close(self) -> None:
        if self.is_tty:
            self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        if self.is_tty:
            self.stream.write("\n")
        self.stream.write(text + "\n")
        self.stream.flush()
