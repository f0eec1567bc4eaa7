"""What `autoresearch run` (and `suite`, `finalize`) shows while it works, drawn from experiment.events.

On a terminal: a live view (rich): the header, then per experiment its change and the first line of its
reasoning, a bar for its training and evaluation, its verdict in words with the paired gain +- its standard
error, and a footer with the best so far, keeps, crashes and the time left. Without a terminal (CI, a log file,
nohup): the same events as plain lines, one per event, training and evaluation progress thinned out. Both write
to the stream they were given, never through print(): inside a Prefect flow with log_prints, print() goes to
the run's log instead of the screen.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from experiment import events
from research.records.heartbeat import duration_text

# Plain mode: a training's (or evaluation's) progress line at most this often, and at each quarter of it.
PLAIN_EVERY_SECONDS = 10.0


def _bpb(value: float | None) -> str:
    return "none yet" if value is None else f"{value:.6f}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('sh') else 's'}"


class RunClock:
    """The time left: the header's estimate until an experiment is decided, then this session's measured pace."""

    def __init__(self):
        self.started = self.last_decided = time.monotonic()
        self.planned = self.recorded_at_start = self.recorded = 0
        self.estimate: float | None = None

    def start(self, event: events.RunStarted) -> None:
        self.started = self.last_decided = time.monotonic()
        self.planned, self.recorded_at_start, self.recorded = event.planned, event.recorded, event.recorded
        self.estimate = event.estimate_seconds

    def decided(self, recorded: int) -> None:
        self.recorded, self.last_decided = recorded, time.monotonic()

    def seconds_left(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        done = self.recorded - self.recorded_at_start
        if done > 0:  # the pace of the experiments decided so far, less what the current one has already taken
            pace = (self.last_decided - self.started) / done
            return max(0.0, pace * max(0, self.planned - self.recorded) - (now - self.last_decided))
        return None if self.estimate is None else max(0.0, self.estimate - (now - self.started))

    def left_text(self) -> str:
        left = self.seconds_left()
        return "time left unknown until the first experiment" if left is None else f"about {duration_text(left)} left"


def header_line(event: events.RunStarted) -> str:
    estimate = ("duration unknown until the first experiment" if event.estimate_seconds is None
                else f"about {duration_text(event.estimate_seconds)}")
    resumed = f", {event.recorded} already recorded" if event.recorded else ""
    return (f"run {event.tag}: {event.device}, preset {event.preset} | dataset {event.dataset} "
            f"(data {event.data_version[:12]}) | proposer {event.proposer} | {event.budget} per training | "
            f"{event.planned} experiments{resumed} | {estimate}")


def change_line(event: events.ExperimentStarted) -> str:
    if event.baseline:
        return f"exp {event.exp}: baseline" + (f" (seed {event.seed})" if event.seed is not None else "")
    return f"exp {event.exp}: {event.change}" + (f" | why: {event.reasoning}" if event.reasoning else "")


def training_text(event: events.TrainingProgress) -> str:
    parts = [f"step {event.step}", f"{100 * event.fraction:.0f}% of {event.budget or 'the budget'}"]
    if event.elapsed is not None:
        parts.append(f"{event.elapsed:.0f} s")
    if event.tokens_per_second is not None:
        parts.append(f"{event.tokens_per_second / 1e3:.1f}k tok/s")
    if event.loss is not None:
        parts.append(f"loss {event.loss:.4f}")
    return " | ".join(parts)


def evaluation_text(event: events.EvaluationProgress) -> str:
    return f"{event.scored:,} / {event.wanted:,} tokens ({100 * event.fraction:.0f}%) | {event.seconds:.0f} s"


def verdict_text(event: events.Verdict) -> str:
    """The verdict in words, then the numbers it rests on."""
    what = f" ({event.change})" if event.change else ""
    parts = [f"exp {event.exp}{what}: {event.words()}"]
    if event.val_bpb is not None:
        parts.append(f"val_bpb {event.val_bpb:.6f}")
    if event.gain is not None:
        parts.append(f"paired gain {event.gain:+.6f}" + (f" +- {event.paired_se:.6f}" if event.paired_se is not None
                                                          else ""))
    return " | ".join(parts)


def footer_text(best: float | None, keeps: int, crashes: int, recorded: int, planned: int, left: str) -> str:
    return (f"best {_bpb(best)} | {_count(keeps, 'keep')}, {_count(crashes, 'crash')} | "
            f"{recorded} of {planned} experiments | {left}")


def finished_text(event: events.RunFinished, seconds: float) -> str:
    return (f"run {event.tag} {event.outcome}: best val_bpb {_bpb(event.best_val_bpb)} | "
            f"{event.recorded} experiments: {_count(event.keeps, 'keep')}, {_count(event.crashes, 'crash')} | "
            f"took {duration_text(seconds)}")


class PlainLines:
    """One line per event, training and evaluation progress at most every PLAIN_EVERY_SECONDS or per quarter."""

    def __init__(self, stream: TextIO, every_seconds: float = PLAIN_EVERY_SECONDS, clock=time.monotonic):
        self.stream, self.every_seconds, self.now = stream, every_seconds, clock
        self.run_clock = RunClock()
        self._last: dict[tuple, tuple[float, int]] = {}  # (kind, exp, run) -> (when printed, quarter)
        self._lock = threading.Lock()

    def _due(self, key: tuple, fraction: float) -> bool:
        now, quarter = self.now(), int(fraction * 4)
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every_seconds and quarter <= last[1]:
            return False
        self._last[key] = (now, quarter)
        return True

    def line(self, event) -> str | None:
        """The line for `event`, or None when it is progress inside the throttle."""
        if isinstance(event, events.RunStarted):
            self.run_clock.start(event)
            return header_line(event)
        if isinstance(event, events.ExperimentStarted):
            return change_line(event)
        if isinstance(event, events.TrainingProgress):
            if not self._due(("train", event.exp, event.run), event.fraction):
                return None
            return f"exp {event.exp} training {event.run}: {training_text(event)}"
        if isinstance(event, events.EvaluationProgress):
            if not self._due(("eval", event.exp, event.run), event.fraction):
                return None
            return f"exp {event.exp} evaluating {event.run}: {evaluation_text(event)}"
        if isinstance(event, events.Verdict):
            self.run_clock.decided(event.recorded)
            footer = footer_text(event.best_val_bpb, event.keeps, event.crashes, event.recorded, self.run_clock.planned,
                                 self.run_clock.left_text())
            return f"{verdict_text(event)} || {footer}"
        if isinstance(event, events.RunFinished):
            return finished_text(event, time.monotonic() - self.run_clock.started)
        return None

    def __call__(self, event) -> None:
        with self._lock:
            text = self.line(event)
            if text is not None:
                self.stream.write(text + "\n")
                self.stream.flush()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class LiveView:
    """The terminal's view: finished lines printed above a live region of bars and the footer."""

    def __init__(self, stream: TextIO, starting: str):
        from rich.console import Console

        self.console = Console(file=stream)
        self.starting = starting
        self.run_clock = RunClock()
        self.active: dict[tuple[int, str], object] = {}  # (exp, run) -> its latest progress event
        self.totals = {"best": None, "keeps": 0, "crashes": 0}
        self.header_seen = False
        # Reentrant: console.print under a running Live redraws the region, which calls _render on this thread.
        self._lock = threading.RLock()
        self._live = None

    def open(self) -> None:
        from rich.live import Live

        self._live = Live(get_renderable=self._render, console=self.console, refresh_per_second=4, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _print(self, text: str, style: str | None = None) -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style), soft_wrap=True)

    def __call__(self, event) -> None:
        if isinstance(event, events.RunStarted) and self._live is None:
            self.open()  # the next run of a suite
        with self._lock:
            if isinstance(event, events.RunStarted):
                self.run_clock.start(event)
                self.header_seen = True
                self._print(header_line(event), "bold")
            elif isinstance(event, events.ExperimentStarted):
                self._print(change_line(event), "cyan")
            elif isinstance(event, (events.TrainingProgress, events.EvaluationProgress)):
                self.active[(event.exp, event.run)] = event
            elif isinstance(event, events.Verdict):
                for key in [key for key in self.active if key[0] == event.exp]:
                    del self.active[key]
                self.run_clock.decided(event.recorded)
                self.totals = {"best": event.best_val_bpb, "keeps": event.keeps, "crashes": event.crashes}
                style = {"keep": "bold green", "crash": "red", "skip": "yellow"}.get(event.status)
                self._print(verdict_text(event), style)
            elif isinstance(event, events.RunFinished):
                self.active.clear()
                self._print(finished_text(event, time.monotonic() - self.run_clock.started), "bold")
        if isinstance(event, events.RunFinished):
            self.close()  # what the command prints next (the results table) must not be redrawn over
        elif self._live is not None:
            self._live.refresh()

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            if not self.header_seen and not self.active:
                return Text(self.starting, style="dim")
            rows = Table.grid(padding=(0, 1))
            for (exp, run), event in list(self.active.items()):
                training = isinstance(event, events.TrainingProgress)
                text = training_text(event) if training else evaluation_text(event)
                rows.add_row(Text(f"exp {exp} {'training' if training else 'evaluating'} {run}", style="cyan"),
                             ProgressBar(total=1.0, completed=event.fraction, width=24), Text(text))
            footer = footer_text(self.totals["best"], self.totals["keeps"], self.totals["crashes"],
                                 self.run_clock.recorded, self.run_clock.planned, self.run_clock.left_text())
            return Group(rows, Text(footer, style="dim")) if self.header_seen else rows


def starting_line(command: str) -> str:
    return f"autoresearch {command}: starting (the config, Prefect's server, the data)..."


@contextmanager
def watching(command: str, quiet: bool = False, stream: TextIO | None = None) -> Iterator[None]:
    """Show the run's events on `stream` (stdout) while the block runs: live on a terminal, plain lines elsewhere,
    nothing with `quiet`. A terminal says at once that it is starting, before the block's slow imports, in the
    live region, which is cleared at the end; plain lines start with the run's header, so a run refused before
    it starts (a bad value, a locked tag) still prints its one sentence alone."""
    if quiet:
        yield
        return
    stream = stream or sys.stdout
    view = LiveView(stream, starting_line(command)) if stream.isatty() else PlainLines(stream)
    view.open()
    try:
        with events.subscribed(view):
            yield
    finally:
        view.close()
