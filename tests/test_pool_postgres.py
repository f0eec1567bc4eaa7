"""README's "Several machines" recipe, end to end: scripts/head_node.sh starts a Prefect server on PostgreSQL,
two process workers each pinned to one "device" (CUDA_VISIBLE_DEVICES, AUTORESEARCH_SLOT_SCOPE, one core),
and `autoresearch run research.executor=pool research.parallel=2` on the head node. Then the faults: a worker
killed with its machine mid-training, the orchestrator killed mid-round, the server restarted mid-run, and two
research runs sharing the pool and the device limits.

One server, one database and one set of workers for the module: each test has its own run tag and folder, and
leaves the workers as it found them.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from research.records.ledger import Ledger
from tests.operate_helpers import overlap_seconds, read_intervals, start, stop, wait_for
from tests.pool_helpers import (HEAD_SCRIPT, POOL, Head, head_leftovers, head_processes, kill_tree,
                                postgres_missing, research_command, start_research, start_worker)

pytestmark = pytest.mark.slow
LOST_AFTER = 30  # seconds without a heartbeat before a pool run is lost (production: 60); above a pool run's
                # start under load (~10 s from Pending to its first beat at a load average of 8)


@pytest.fixture(scope="module")
def head():
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    head = Head()
    try:
        seconds = head.start()
        print(f"head node ready in {seconds:.1f} s")
        yield head
    finally:
        head.close()


@pytest.fixture(scope="module")
def client(head):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: head.api}):
        yield


@pytest.fixture(scope="module")
def workers(head, client):
    """Two workers, device 0 and device 1. A test that kills one starts it again through `respawn`."""
    procs = {device: start_worker(head, device, f"worker-dev{device}") for device in (0, 1)}

    class Workers:
        def respawn(self, device):
            procs[device] = start_worker(head, device, f"worker-dev{device}-again-{time.monotonic_ns()}")

        def pid(self, device):
            return procs[device].pid

        def alive(self, device):
            return procs[device].poll() is None

    try:
        yield Workers()
    finally:
        for proc in procs.values():
            stop(proc)


def run_to_end(head, runs: Path, tag: str, experiments: int, *extra: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(research_command(runs, tag, experiments, *extra), env=head.client_env(), capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)


def ledger_rows(run_dir: Path) -> list[dict]:
    return Ledger(run_dir / "results.tsv").rows()


def pool_runs(run_dir: Path) -> list:
    """The train-evaluate flow runs the server holds for experiments of this run folder."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
    return [run for run in runs if str(run.parameters.get("exp_dir", "")).startswith(str(run_dir) + "/")]


def all_slots_free(names: list[str]) -> bool:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return all(client.read_global_concurrency_limit_by_name(name).active_slots == 0 for name in names)


def test_research_run_through_the_pool_on_postgres(head, workers, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    started = time.monotonic()
    done = run_to_end(head, tmp_path, "pooled", 4)
    print(f"4 experiments through the pool: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "pooled"
    rows = ledger_rows(run_dir)
    assert [row["exp"] for row in rows] == [0, 1, 2, 3]
    assert [row["status"] for row in rows[:2]] == ["baseline", "baseline"]
    assert all(row["val_bpb"] is not None for row in rows), rows
    assert rows[2]["baseline_sha"] == rows[3]["baseline_sha"] and rows[2]["key"] != rows[3]["key"]
    # The run repository: one tag per experiment, as in a local run.
    tags = subprocess.run(["git", "tag"], cwd=run_dir / "repo", capture_output=True, text=True, check=True).stdout.split()
    assert {f"exp{n}" for n in range(4)} <= set(tags), tags
    # Device records: each experiment trained on a worker's own device, and the two of a round at once.
    trained = {n: read_intervals(run_dir / "exp" / str(n))[-1] for n in range(4)}
    assert {trained[n]["slot"] for n in range(4)} == {"autoresearch-dev0-cpu", "autoresearch-dev1-cpu"}, trained
    for a, b in ((0, 1), (2, 3)):
        assert trained[a]["slot"] != trained[b]["slot"] and overlap_seconds(trained[a], trained[b]) > 0, trained
    # Each training (an experiment's first, or a paired seed the decision asked for) ran as one pool run,
    # completed; the results artifact is on the server.
    runs = pool_runs(run_dir)
    folders = [run.parameters["exp_dir"] for run in runs]
    assert len(folders) == len(set(folders)), sorted(folders)
    assert {str(run_dir / "exp" / str(n)) for n in range(4)} <= set(folders), sorted(folders)
    assert all(run.state.is_completed() for run in runs), [(run.name, run.state.name) for run in runs]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["pooled-results"])))
    assert artifacts and artifacts[0].type == "table"
    assert all_slots_free(["autoresearch-dev0-cpu", "autoresearch-dev1-cpu"])
    # A worker's terminal shows, on the defaults, the runs it took and their trainings' progress (INFO).
    worker_logs = {log.name: log.read_text(errors="replace") for log in head.dir.glob("worker-dev*.log")}
    assert all("submitting flow run" in text for text in worker_logs.values()), list(worker_logs)
    assert any(re.search(r"step +\d+ \|.*tok/s", text) for text in worker_logs.values()), list(worker_logs)
    # The database password stays in its 0600 file: not in the server's, the workers' or the run's output.
    password_file = head.dir / "db-password"
    password = password_file.read_text().strip()
    assert len(password) >= 32 and password_file.stat().st_mode & 0o777 == 0o600
    for log in [head.log, *head.dir.glob("worker-*.log")]:
        assert password not in log.read_text(errors="replace"), log
    assert password not in done.stdout + done.stderr


def training_in_progress(run_dir: Path, exps=(0, 1)):
    """(exp, pid of its pool run) for the first experiment whose training prints steps on a worker, else None."""
    for exp in exps:
        folder = run_dir / "exp" / str(exp)
        beat, log = folder / "pool-heartbeat.json", folder / "train.log"
        try:
            if "step" in log.read_text() and not (folder / "metrics.json").exists():
                return exp, json.loads(beat.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def test_a_worker_killed_mid_training_is_relaunched_and_the_run_goes_on(head, workers, tmp_path):
    from tests.pool_helpers import children

    run_dir = tmp_path / "lost-worker"
    proc = start_research(head, tmp_path, "lost-worker", 2, "budget.steps=60",
                          f"research.pool.lost_after_seconds={LOST_AFTER}")
    try:
        exp, pool_pid = wait_for(lambda: training_in_progress(run_dir), 240, "a training on a worker")
        device = next(d for d in (0, 1) if pool_pid in children(workers.pid(d)))
        kill_tree(workers.pid(device))  # the worker, its flow run and the training: the machine is gone
        proc.wait(400)
    finally:
        stop(proc)
        workers.respawn(device)
    log = (tmp_path / "lost-worker.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    rows = ledger_rows(run_dir)
    assert [row["exp"] for row in rows] == [0, 1]  # no row lost, none doubled
    # Relaunched once, on the surviving worker: the baseline has its value (a crash row would stop the run).
    assert rows[exp]["status"] == "baseline" and rows[exp]["val_bpb"] is not None, rows[exp]
    tries = [run for run in pool_runs(run_dir) if run.parameters["exp_dir"] == str(run_dir / "exp" / str(exp))]
    states = sorted((run.state.name, run.state.message or "") for run in tries)
    assert [name for name, _ in states] == ["Completed", "Crashed"], states
    assert "no heartbeat from its worker" in states[1][1], states
    assert "lost: no heartbeat" in log  # the research flow said why it launched the experiment again
    # The dead worker's device slot is freed by its lease (60 s) without anyone releasing it.
    wait_for(lambda: all_slots_free([f"autoresearch-dev{device}-cpu"]), 100, "the dead worker's slot", every=1)


def test_the_orchestrator_killed_mid_round_resumes_and_waits_for_its_pool_runs(head, workers, tmp_path):
    run_dir = tmp_path / "cut-round"
    first = start_research(head, tmp_path, "cut-round", 2, "budget.steps=60")
    try:
        both = lambda: all(training_in_progress(run_dir, (n,)) for n in (0, 1))  # noqa: E731
        wait_for(both, 240, "both trainings of the round on the pool")
        launched = {run.id for run in pool_runs(run_dir)}
        kill_tree(first.pid)  # the research flow, mid-round; its pool runs go on on the workers
        first.wait(30)
    finally:
        stop(first)
    assert len(launched) == 2 and (run_dir / "round.json").is_file()
    again = run_to_end(head, tmp_path, "cut-round", 2, "budget.steps=60")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert [row["exp"] for row in ledger_rows(run_dir)] == [0, 1]
    runs = pool_runs(run_dir)
    assert {run.id for run in runs} == launched, "the resumed run started a pool run again instead of waiting"
    assert all(run.state.is_completed() for run in runs)
    assert not (run_dir / "round.json").exists()


def test_a_server_restart_mid_run_is_waited_out(head, workers, tmp_path):
    run_dir = tmp_path / "restart"
    proc = start_research(head, tmp_path, "restart", 2, "budget.steps=60")
    try:
        wait_for(lambda: training_in_progress(run_dir), 240, "a training on a worker")
        went = time.monotonic()
        head.stop_server()
        assert head_leftovers(head.dir) == [], "head_node.sh left a process behind the stopped server"
        time.sleep(3)
        head.start()
        away = time.monotonic() - went  # the server answered nothing for at most this long
        proc.wait(400)
    finally:
        stop(proc)
    log = (tmp_path / "restart.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    # The watch polls with the flow's Prefect client, which retries a connection it had 5 times, 2, 4, 8, 16 and
    # 32 s apart (each +-20%: 49.6 s at least): an outage shorter than that is ridden out unseen, so the log says
    # nothing of it. A longer one may be seen; then every "does not answer" was followed by its "answers again".
    down, back = log.count("the Prefect server does not answer ("), log.count("the Prefect server answers again after ")
    if away < 49.6:
        assert down == back == 0, (away, log[-3000:])
    else:
        assert down == back and "did not answer for" not in log, (away, log[-3000:])
    rows = ledger_rows(run_dir)
    assert [row["exp"] for row in rows] == [0, 1] and all(row["val_bpb"] is not None for row in rows)
    folders = [run.parameters["exp_dir"] for run in pool_runs(run_dir)]
    assert sorted(folders) == [str(run_dir / "exp" / str(n)) for n in (0, 1)]  # none started twice


def test_two_research_runs_share_the_pool_and_never_two_trainings_on_one_device(head, workers, tmp_path):
    # A second worker on device 0: only the device limit now keeps two trainings off that device.
    extra = start_worker(head, 0, "worker-dev0-second")
    try:
        runs = [start_research(head, tmp_path, tag, 2, "budget.steps=20") for tag in ("share-a", "share-b")]
        for proc in runs:
            proc.wait(400)
    finally:
        for proc in runs:
            stop(proc)
        stop(extra)
    for tag, proc in zip(("share-a", "share-b"), runs):
        assert proc.returncode == 0, (tmp_path / f"{tag}.log").read_text()[-3000:]
        assert [row["exp"] for row in ledger_rows(tmp_path / tag)] == [0, 1]
    held: dict[str, list[dict]] = {}
    for record in tmp_path.rglob("device.jsonl"):
        for entry in map(json.loads, record.read_text().splitlines()):
            held.setdefault(entry["slot"], []).append(entry)
    assert set(held) == {"autoresearch-dev0-cpu", "autoresearch-dev1-cpu"}, held
    for slot, entries in held.items():
        entries.sort(key=lambda entry: entry["started_at"])
        for before, after in zip(entries, entries[1:]):
            assert overlap_seconds(before, after) <= 0, (slot, before, after)


def test_the_worker_forks_each_run_from_its_warm_process_with_the_jobs_environment(head, workers, tmp_path):
    """README's `autoresearch worker`: a flow run is a fork of the worker's fork server (Prefect and the project
    already imported), pinned by the worker's environment, with the job's env on top; a run whose process
    dies without a word is marked Crashed by the worker, which then takes the next run."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.deployments.runner import EntrypointType

    from tests.pool_probe import die, report_process

    for probe in (report_process, die):
        probe.to_deployment(name="probe", work_pool_name=POOL, entrypoint_type=EntrypointType.MODULE_PATH).apply()
    out = tmp_path / "probe.json"
    done = run_deployment("pool-probe/probe", parameters={"out": str(out)}, timeout=120,
                          job_variables={"env": {"AUTORESEARCH_PROBE": "from-the-job"}})
    assert done.state.is_completed(), done.state
    seen = json.loads(out.read_text())
    assert "forkserver" in seen["parent_cmdline"], seen  # not `python -m prefect.engine`: a fork of the warm one
    assert seen["grandparent"] in (workers.pid(0), workers.pid(1)), seen  # that fork server is a worker's
    assert seen["flows_pool_imported"], seen  # preloaded: the probe itself never imports it
    assert seen["probe_env"] == "from-the-job" and seen["device"] in ("0", "1"), seen

    died = run_deployment("pool-probe-dies/probe", parameters={"code": 3}, timeout=120)
    with get_client(sync_client=True) as client:
        died = wait_for(lambda: (run := client.read_flow_run(died.id)).state.is_final() and run, 60, "the dead run's state")
    assert died.state.is_crashed() and "status code 3" in (died.state.message or ""), died.state
    again = run_deployment("pool-probe/probe", parameters={"out": str(tmp_path / "again.json")}, timeout=120)
    assert again.state.is_completed() and json.loads((tmp_path / "again.json").read_text())["probe_env"] is None


# Stands in for `prefect` (head_node.sh's PREFECT_BIN): a server that runs and never answers, so the script's
# background pool creation is still trying when the server stops; each try takes 3 s, as a real CLI call does.
FAKE_PREFECT = """#!/bin/sh
case "$1" in
  server) exec sleep 600 ;;
  work-pool) echo "$*" >> "$0.calls"; sleep 3 & trap 'kill $!; exit 143' TERM; wait $!; exit 1 ;;
esac
exit 2
"""


def test_the_head_node_leaves_no_process_behind_its_server(tmp_path):
    """Ctrl-C stops the server (SIGINT to the process group); head_node.sh's pool creation, caught mid-try, ends
    with it instead of calling the stopped server for its 240 tries."""
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    fake = tmp_path / "prefect"
    fake.write_text(FAKE_PREFECT)
    fake.chmod(0o755)
    head = Head({"PREFECT_BIN": str(fake)})
    try:
        proc = start([str(HEAD_SCRIPT), "start"], head.env, head.log)
        try:
            wait_for(lambda: fake.with_name("prefect.calls").is_file() or proc.poll() is not None, 120,
                     "head_node.sh's first try at the pool")
            assert proc.poll() is None, head.log.read_text()[-3000:]
            assert head_processes(head.dir), "nothing of the head node found to check"
        finally:
            stop(proc)
        assert head_leftovers(head.dir) == [], "left behind the stopped server"
    finally:
        for line in head_processes(head.dir):  # after a failure: nothing of this test goes on calling
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        head.close()
