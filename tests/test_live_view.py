"""The live view of a run (cli/live_view.py) and the events it reads (experiment/events.py).

Unit tests: a training's and an evaluation's log lines read as events, the events as plain lines, the throttle,
the publish point. End to end (slow): `autoresearch run` under a pseudo-terminal, and with its output in a file.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.live_view import PlainLines, RunClock, footer_text, verdict_text, watching
from experiment import events
from research.judging.verdict import Decision
from experiment.progress_lines import evaluation_progress, relay, training_progress
from research.reporting.run_estimate import estimate_seconds
from tasks.run_log import verdict_line

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# As training/loop.py Progress prints it to a pipe, and to a terminal (a bar, then the same words).
TRAIN_LINE = "step    12 |  25.0% of 60 s | loss 6.1234 |      9.8k tok/s |   15.2s"


def test_a_training_progress_line_reads_as_its_fields():
    event = training_progress(3, "optim.matrix_lr=0.05", TRAIN_LINE)
    assert event == events.TrainingProgress(exp=3, run="optim.matrix_lr=0.05", step=12, fraction=0.25, budget="60 s",
                                            loss=6.1234, tokens_per_second=9800.0, elapsed=15.2)


def test_a_field_added_at_the_end_or_a_bar_in_front_leaves_the_others_readable():
    later = training_progress(0, "baseline", TRAIN_LINE + " | 1.23 GB | mfu 4.5%")
    barred = training_progress(0, "baseline", "[#######.......] " + TRAIN_LINE)
    steps = training_progress(0, "baseline", "step     4 | 100.0% of 4 steps | loss nan |      0.5k tok/s |    2.0s")
    assert (later.step, later.fraction, later.loss, later.elapsed, later.tokens_per_second) == (12, 0.25, 6.1234, 15.2, 9800.0)
    assert barred.step == 12 and barred.elapsed == 15.2
    assert steps.fraction == 1.0 and steps.budget == "4 steps" and steps.loss != steps.loss  # nan reads as nan


def test_other_lines_are_not_progress():
    for line in ("compiling the model...", "training failed: loss exploded at step 12", "val_bpb: 1.234567", ""):
        assert training_progress(0, "baseline", line) is None
        assert evaluation_progress(0, "baseline", line) is None


def test_the_evaluation_lines_read_as_tokens_scored_of_wanted():
    start = evaluation_progress(2, "baseline", "eval: 65,536 tokens of the validation shard")
    later = evaluation_progress(2, "baseline", "eval       16,384 / 65,536 tokens |    4.1s")
    assert (start.scored, start.wanted, later.scored, later.wanted, later.seconds) == (0, 65536, 16384, 65536, 4.1)
    assert later.fraction == 0.25


def test_the_relay_still_logs_every_line_and_reads_nothing_when_nobody_listens():
    logged = []

    def never(*_):
        raise AssertionError("a line was parsed with no listener")

    relay(never, 0, "baseline", logged.append)(TRAIN_LINE)
    assert logged == [TRAIN_LINE] and not events.listening()
    seen = []
    with events.subscribed(seen.append):
        relay(training_progress, 5, "baseline", logged.append)(TRAIN_LINE)
    assert [event.step for event in seen] == [12] and not events.listening()


def test_a_failing_listener_neither_stops_the_run_nor_the_other_listeners():
    seen = []

    def broken(event):
        raise RuntimeError("a view bug")

    with events.subscribed(broken), events.subscribed(seen.append):
        events.publish(events.ExperimentStarted(exp=1, change=None))
    assert len(seen) == 1


HEADER = events.RunStarted(tag="night1", device="cpu (AMD EPYC)", preset="cpu", dataset="bundled",
                           data_version="0123456789abcdef0123", proposer="local", budget="60 s", planned=6,
                           estimate_seconds=900.0)
DISCARD = Decision(status="discard", reason="paired gain -0.001000: SPRT rejects; discarded.", val_bpb=1.2345,
                   best_val_bpb=1.2300, paired_delta=0.0010, paired_se=0.0004)


def plain(*sequence, clock=None) -> list[str]:
    out = io.StringIO()
    view = PlainLines(out, clock=clock or time.monotonic)
    for event in sequence:
        view(event)
    return out.getvalue().splitlines()


def test_the_header_says_what_will_happen():
    (line,) = plain(HEADER)
    for words in ("run night1", "cpu (AMD EPYC), preset cpu", "dataset bundled (data 0123456789ab)",
                  "proposer local", "60 s per training", "6 experiments", "about 15 min"):
        assert words in line, (words, line)


def test_an_experiment_says_its_change_and_the_first_line_of_its_reasoning():
    lines = plain(events.ExperimentStarted(exp=2, change="optim.matrix_lr=0.05", reasoning="short runs underfit"),
                  events.ExperimentStarted(exp=0, change=None, seed=42))
    assert lines == ["exp 2: optim.matrix_lr=0.05 | why: short runs underfit", "exp 0: baseline (seed 42)"]


def test_the_verdict_is_in_words_with_the_paired_gain_and_the_footer():
    rows = [{"status": "baseline"}, {"status": "baseline"}, {"status": "keep"}, {"status": "crash"}, {"status": "discard"}]
    verdict = events.verdict_of(4, DISCARD, "optim.matrix_lr=0.05", rows)
    (line,) = plain(HEADER, verdict)[1:]
    assert line.startswith("exp 4 (optim.matrix_lr=0.05): DISCARD: paired gain -0.001000: SPRT rejects; discarded.")
    assert "val_bpb 1.234500 | paired gain -0.001000 +- 0.000400" in line  # gain: positive is better
    assert "best 1.230000 | 1 keep, 1 crash | 5 of 6 experiments | about" in line and "left" in line


def test_the_prefect_verdict_line_and_the_view_word_the_verdict_alike():
    assert verdict_line(4, DISCARD) == "exp 4: DISCARD: paired gain -0.001000: SPRT rejects; discarded."
    assert verdict_line(4, DISCARD).split(": ", 1)[1] in verdict_text(events.verdict_of(4, DISCARD))


def test_a_keep_and_a_crash_are_verdicts_of_their_own_kind():
    keep = events.verdict_of(3, Decision(status="keep", reason="SPRT accepts"))
    crash = events.verdict_of(3, Decision(status="crash", reason="training killed by SIGKILL"))
    assert isinstance(keep, events.Keep) and isinstance(crash, events.Crash) and isinstance(crash, events.Verdict)
    assert "CRASH: training killed by SIGKILL" in plain(crash)[0]


def test_training_progress_is_thinned_to_every_ten_seconds_or_each_quarter():
    now = [0.0]
    out = io.StringIO()
    view = PlainLines(out, clock=lambda: now[0])
    for seconds, step, fraction in ((0, 1, 0.01), (3, 5, 0.05), (6, 8, 0.10), (12, 16, 0.20), (14, 20, 0.26),
                                    (15, 21, 0.27), (30, 50, 0.9), (31, 55, 1.0)):
        now[0] = seconds
        view(events.TrainingProgress(exp=2, run="x=1", step=step, fraction=fraction, budget="60 s"))
    # 1: the first; 16: 12 s after it; 20: a quarter passed; 50: 16 s later, and the third quarter; 55: the end
    assert [int(line.split("step ")[1].split(" ")[0]) for line in out.getvalue().splitlines()] == [1, 16, 20, 50, 55]


def test_the_end_of_a_run_says_best_keeps_crashes():
    (line,) = plain(events.RunFinished(tag="night1", outcome="done", best_val_bpb=1.23,
                                       counts={"baseline": 2, "keep": 1, "discard": 3}))
    assert line.startswith("run night1 done: best val_bpb 1.230000 | 6 experiments: 1 keep, 0 crashes | took ")


def test_the_footer_before_any_number_says_so():
    assert footer_text(None, 0, 2, 2, 6, "time left unknown") == "best none yet | 0 keeps, 2 crashes | 2 of 6 experiments | time left unknown"


def test_quiet_shows_nothing_even_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with watching("run", quiet=True, stream=out):
        assert not events.listening()
        events.publish(HEADER)
    assert out.getvalue() == ""


def test_quiet_is_an_option_of_run_suite_and_finalize():
    from cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "tag=x", "--quiet"]).quiet
    assert parser.parse_args(["finalize", "night1", "--quiet"]).quiet
    assert not parser.parse_args(["suite"]).quiet


def test_the_estimate_is_measured_once_there_is_something_to_measure():
    time_budget = {"kind": "time", "seconds": 60}
    assert estimate_seconds({"kind": "steps", "steps": 50}, [], 6, 2) is None
    assert estimate_seconds(time_budget, [], 6, 2) == pytest.approx(140 * (2 + 4 * 1.45))
    rows = [{"status": "baseline", "total_seconds": 100.0}, {"status": "baseline", "total_seconds": 200.0}]
    assert estimate_seconds(time_budget, rows, 6, 2) == 4 * 150.0


# End to end: a tiny model, a steps budget, 2 baselines and 1 proposal with one pair: seconds per training.
TINY = ["preset=cpu", "proposer=local", "hparams.model.depth=2", "hparams.model.aspect_ratio=32",
        "hparams.model.head_dim=32", "hparams.batch.device_batch_size=8", "hparams.batch.total_batch_tokens=1024",
        "train.seq_len=128", "train.eval_tokens=4096", "train.eval_batch_size=8", "budget.kind=steps",
        "budget.steps=4", "research.max_experiments=3", "decide.sequential.max_pairs=1"]
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\r")


def run_command(tmp_path: Path, data: dict, tag: str) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "cli.main", "run", *TINY, f"tag={tag}", f"paths.runs_dir={tmp_path / 'runs'}",
               f"paths.data_dir={data['root'] / 'datasets'}"]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "prefect" / "storage")}
    env.pop("PREFECT_API_URL", None)
    return command, env


def in_order(text: str, patterns: list[str]) -> None:
    """Each pattern found after the previous one's match."""
    position = 0
    for pattern in patterns:
        found = re.compile(pattern).search(text, position)
        assert found, f"{pattern!r} not after position {position} in:\n{text[-4000:]}"
        position = found.end()


EXPECTED = [r"run (tty|plain): [^|]*, preset cpu \| dataset bundled \(data \w+\) \| proposer local \| 4 steps per "
            r"training \| 3 experiments", r"exp 0: baseline \(seed \d+\)", r"exp 0 training baseline.*step \d+",
            r"exp 0: BASELINE: ", r"best \d\.\d+ \| 0 keeps, 0 crashes \| 1 of 3 experiments",
            r"exp 1: baseline", r"exp 1: BASELINE", r"exp 2: [\w.]+=\S+ \| why: ", r"exp 2 training [\w.]+=.*step \d+",
            r"exp 2 \([\w.]+=\S+\): (KEEP|DISCARD): ", r"run (tty|plain) done: best val_bpb \d\.\d+ \| 3 experiments"]


@pytest.mark.slow
def test_a_run_on_a_terminal_shows_header_changes_progress_verdicts_and_footer(tmp_path, tiny_bundled_with_test_split):
    command, env = run_command(tmp_path, tiny_bundled_with_test_split, "tty")
    # `script` runs the command on a pseudo-terminal and copies what it draws to its own stdout.
    proc = subprocess.run(["script", "-qfec", subprocess.list2cmdline(command), "/dev/null"], cwd=PROJECT_ROOT,
                          env={**env, "COLUMNS": "200", "LINES": "50"}, capture_output=True, timeout=300)
    (tmp_path / "screen.txt").write_bytes(proc.stdout)  # as drawn, escape codes included: to look at on a failure
    text = ANSI.sub("", proc.stdout.decode("utf-8", "replace"))
    assert proc.returncode == 0, text[-3000:]
    assert text.lstrip().startswith("autoresearch run: starting"), text[:500]  # before any slow import
    in_order(text, EXPECTED)


@pytest.mark.slow
def test_a_run_without_a_terminal_prints_plain_lines_one_per_event(tmp_path, tiny_bundled_with_test_split):
    command, env = run_command(tmp_path, tiny_bundled_with_test_split, "plain")
    proc = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout  # no bar redraws, no colours
    in_order(proc.stdout, EXPECTED)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("run plain: ")  # the header first, then one line per event
    assert sum(line.startswith("exp 0: BASELINE") for line in lines) == 1


def test_the_time_left_counts_down_at_the_pace_of_the_decided_experiments():
    clock = RunClock()
    clock.start(HEADER)  # 6 planned, 900 s estimated
    clock.started = clock.last_decided = 1000.0
    assert clock.seconds_left(now=1100.0) == 800.0  # the estimate, less the time gone
    clock.decided(2)
    clock.last_decided = 1200.0  # 2 experiments in 200 s: 100 s each, 4 left
    assert clock.seconds_left(now=1200.0) == 400.0
    assert clock.seconds_left(now=1250.0) == 350.0  # the running one is half done
