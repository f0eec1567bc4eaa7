"""`autoresearch status` without a tag (every run in a table) and with one (detail plus the last rows), and the
sentence a run ends with about the noise and the keep line."""
from __future__ import annotations

import os
import time

from research.records.heartbeat import Heartbeat
from research.judging.keep_line import noise_sentence
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from research.reporting.report import summarize
from research.reporting.run_overview import liveness, run_detail, runs_table
from research.records.run_settings import decide_settings, save_run_settings
from bench.synthetic_ledger import synthetic_ledger

DECIDE = decide_settings("/nonexistent/settings.json")


def make_run(root, tag: str, rows: list[dict], phase: str, planned: int | None, pid: int | None = None) -> RunLayout:
    layout = RunLayout.of(root, tag)
    layout.root.mkdir(parents=True)
    ledger = Ledger(layout.results)
    for row in rows:
        ledger.record(row)
    if planned is not None:
        save_run_settings(layout.settings, {"decide": DECIDE, "research": {"max_experiments": planned}})
    record = Heartbeat(layout.heartbeat, tag).beat(phase, exp=len(rows), best=None)
    if pid is not None:  # a run whose orchestrator has gone: its heartbeat names a pid that no longer exists
        record["pid"] = pid
        layout.heartbeat.write_text(__import__("json").dumps(record))
    return layout


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_status_without_a_tag_lists_every_run(tmp_path):
    rows = synthetic_ledger(12)
    make_run(tmp_path, "night1", rows, "done", 12)
    make_run(tmp_path, "night2", rows[:5], "training", 30)  # this process beats: alive
    make_run(tmp_path, "crashed", rows[:3], "training", 20, pid=dead_pid())
    (tmp_path / "not-a-run").mkdir()
    table = runs_table(tmp_path)
    lines = table.splitlines()
    assert lines[0] == "| run | phase | experiments | best val_bpb | last activity | process | disk |"
    assert len(lines) == 2 + 3 and "not-a-run" not in table
    by_tag = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in lines[2:]}
    assert by_tag["night1"][:2] == ["done", "12 of 12"] and by_tag["night1"][4] == "finished"
    assert by_tag["night2"][:2] == ["training", "5 of 30"] and by_tag["night2"][4] == "alive"
    assert by_tag["crashed"][4] == "dead"
    assert by_tag["night1"][2] == f"{summarize(rows)['best_val_bpb']:.6f}"  # the best, from the ledger
    assert by_tag["night2"][3].endswith("s ago")


def test_status_of_one_run_gives_the_heartbeat_and_the_last_five_rows(tmp_path):
    rows = synthetic_ledger(12)
    layout = make_run(tmp_path, "night1", rows, "training", 40)
    detail = run_detail(layout)
    assert "Run 'night1': training experiment 12" in detail
    assert "Experiments recorded: 12 of 40 planned." in detail
    assert f"in {layout.root}, 0 checkpoints kept." in detail
    table_rows = [line for line in detail.splitlines() if line.startswith("| ") and not line.startswith("| exp")]
    assert [int(line.split("|")[1]) for line in table_rows] == [7, 8, 9, 10, 11]


def test_liveness_tells_stale_from_alive():
    now = time.time()
    beat = {"phase": "training", "host": __import__("socket").gethostname(), "pid": os.getpid(), "time": now - 3600}
    assert liveness(beat, now) == "stale" and liveness({**beat, "time": now}, now) == "alive"
    assert liveness({**beat, "host": "elsewhere"}, now) == "on elsewhere"
    assert liveness({**beat, "phase": "stopped"}, now) == "finished" and liveness(None, now) == "unknown"


def test_the_end_of_run_sentence_counts_the_noise_and_names_the_keep_line():
    rows = synthetic_ledger(100)
    inside = [r for r in rows if r["status"] == "discard" and r["paired_delta"] < 0]
    judged = [r for r in rows if r["status"] in ("keep", "discard")]
    sentence = noise_sentence(rows, DECIDE)
    assert sentence.startswith(f"{len(inside)} of {len(judged)} judged proposals were better than the best but "
                               "inside the noise (paired gains up to ")
    assert "the keep line now asks a first run to gain 0.00" in sentence and sentence.endswith(").")
    assert noise_sentence(rows[:1], DECIDE) == "0 proposals judged; no keep line yet (the baselines give no noise estimate)."


def test_status_shows_each_runs_disk_use(tmp_path):
    """Bytes under the run folder, a hard-linked checkpoint (finalize's test split) counted once."""
    layout = make_run(tmp_path, "night1", synthetic_ledger(3), "done", 3)
    arm = layout.root / "finalize" / "final" / "1000"
    (arm / "test").mkdir(parents=True)
    (arm / "checkpoint.npz").write_bytes(b"\0" * 2_000_000)
    os.link(arm / "checkpoint.npz", arm / "test" / "checkpoint.npz")
    table = runs_table(tmp_path)
    disk = table.splitlines()[2].split("|")[7].strip()
    assert disk.endswith(" MB") and 2.0 <= float(disk.split()[0]) < 2.1
    assert "1 checkpoint kept." in run_detail(layout)  # two names, one file on disk
