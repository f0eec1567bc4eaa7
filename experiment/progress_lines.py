"""Read the progress lines the training and evaluation processes already print (train.log, eval.log) as events.

No second channel: the view sees exactly what the logs hold. The training's line (training/loop.py Progress):
    step    12 |  20.0% of 60 s | loss 6.1234 |      9.8k tok/s |   12.3s
and the evaluation's (training/evaluate.py):
    eval: 65,536 tokens of the validation shard
    eval       16,384 / 65,536 tokens |    4.1s
Each field has its own pattern, so a field added at the end (or moved) leaves the others readable; only the
step (or the token counts) must be there for a line to count.
"""
from __future__ import annotations

import re
from typing import Callable

from experiment import events

_STEP = re.compile(r"^\s*(?:\[[#.]*\]\s*)?step\s+(\d+)\s*\|")
_FRACTION = re.compile(r"\|\s*([\d.]+)% of ([^|]+?)\s*(?:\||$)")
_LOSS = re.compile(r"\|\s*loss\s+([-+\w.]+)")
_TOKENS_PER_SECOND = re.compile(r"\|\s*([\d.]+)k tok/s")
_ELAPSED = re.compile(r"\|\s*([\d.]+)s\s*(?:\||$)")
_EVAL_START = re.compile(r"^\s*eval:\s*([\d,]+) tokens")
_EVAL_PROGRESS = re.compile(r"^\s*eval\s+([\d,]+)\s*/\s*([\d,]+) tokens(?:.*?\|\s*([\d.]+)s)?")


def _number(pattern: re.Pattern, line: str) -> float | None:
    found = pattern.search(line)
    if not found:
        return None
    try:
        return float(found.group(1))
    except ValueError:
        return None


def training_progress(exp: int, run: str, line: str) -> events.TrainingProgress | None:
    """The event a training's progress line says, or None for any other line."""
    step = _STEP.search(line)
    if not step:
        return None
    fraction = _FRACTION.search(line)
    tokens = _number(_TOKENS_PER_SECOND, line)
    return events.TrainingProgress(
        exp=exp, run=run, step=int(step.group(1)),
        fraction=min(1.0, float(fraction.group(1)) / 100) if fraction else 0.0,
        budget=fraction.group(2).strip() if fraction else "",
        loss=_number(_LOSS, line),
        tokens_per_second=None if tokens is None else tokens * 1e3,
        elapsed=_number(_ELAPSED, line))


def evaluation_progress(exp: int, run: str, line: str) -> events.EvaluationProgress | None:
    """The event an evaluation's line says (its opening line is 0 tokens scored), or None for any other line."""
    start = _EVAL_START.search(line)
    if start:
        return events.EvaluationProgress(exp=exp, run=run, scored=0, wanted=int(start.group(1).replace(",", "")))
    progress = _EVAL_PROGRESS.search(line)
    if not progress:
        return None
    return events.EvaluationProgress(exp=exp, run=run, scored=int(progress.group(1).replace(",", "")),
                                     wanted=int(progress.group(2).replace(",", "")),
                                     seconds=float(progress.group(3)) if progress.group(3) else 0.0)


def relay(read: Callable[[int, str, str], object], exp: int, run: str,
          also: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """An `on_line` for training.launch.run_isolated: each line goes to `also` (the Prefect log) as before, and,
    when someone listens, the event it says is published."""
    def on_line(line: str) -> None:
        if also is not None and line:
            also(line)
        if line and events.listening():
            event = read(exp, run, line)
            if event is not None:
                events.publish(event)

    return on_line
