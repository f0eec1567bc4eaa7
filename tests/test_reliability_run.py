"""Whole runs through the command line, with Claude played by the fake server and a sentinel API key.

One scenario (module fixture), several checks:
  A  `autoresearch run` starts; while it trains: its listening sockets (Prefect's temporary server) are on
     127.0.0.1 only, and the training process's environment has no API key.
  B  a second run of the same tag refuses with one sentence while A lives.
  -  A's orchestrator alone is killed with SIGKILL: its training child, Prefect's temporary server and the
     server's reaper all end within seconds, and its lock file stays behind.
  C  the same tag again: takes the dead lock over, resumes, a 429 is retried, a `${oc.env:...}` answer three
     times becomes a `skip` row, then a 401 stops the run with one sentence.
Then every file the runs and Prefect wrote (SQLite database and result storage included) and every git object
of the run repository is searched for the sentinel key.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import fake_anthropic as fa  # noqa: E402
from chaos import TINY, autoresearch_command, kill_tree, process_tree  # noqa: E402
from chaos_audit import read_json  # noqa: E402

from research.records.ledger import Ledger  # noqa: E402

SENTINEL = "sk-ant-RUN-SENTINEL-91c3f07a2d"
TAG = "claude"
GOOD = {"key": "optim.matrix_lr", "value": 0.05, "description": "raise the Muon LR", "reasoning": "underfit"}
LEAK = {"key": "model.window_pattern", "value": "${oc.env:ANTHROPIC_API_KEY}", "description": "x", "reasoning": "y"}
pytestmark = pytest.mark.slow


def listening_sockets(pids: list[int]) -> list[str]:
    """host:port of every listening TCP socket owned by one of pids (from /proc/net/tcp{,6})."""
    inodes = {}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = fields[1]
    found = []
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found.append(inodes[link[8:-1]])
    return found


def is_loopback(address: str) -> bool:
    host = address.split(":")[0]
    return host == "0100007F" or host == "00000000000000000000000001000000"


def living(pids: list[int]) -> list[int]:
    """The pids that still run: not gone and not a zombie waiting to be reaped."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def wait_for(predicate, timeout: float, proc=None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    work = tmp_path_factory.mktemp("claude-run")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(ANTHROPIC_API_KEY=SENTINEL, PREFECT_HOME=str(work / "prefect"),
               PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(work / "prefect" / "storage"))
    fake = fa.FakeAnthropic([fa.rate_limited(0.01), fa.tool_answer(GOOD), fa.tool_answer(LEAK), fa.tool_answer(LEAK),
                             fa.tool_answer(LEAK)], default=fa.unauthorized()).start()
    run_dir = work / "runs" / TAG
    command = [*autoresearch_command(), "run", *TINY, "budget.steps=3", f"tag={TAG}", "proposer=claude",
               f"proposer.base_url={fake.base_url}", "proposer.max_retries=2", "proposer.timeout=5",
               f"paths.runs_dir={work / 'runs'}"]
    facts: dict = {"work": work, "run_dir": run_dir, "fake": fake}

    def start(name, extra):
        out = open(work / f"{name}.log", "w")
        return subprocess.Popen([*command, *extra], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    try:
        a = start("A", ["research.max_experiments=6"])

        def training():
            beat = read_json(run_dir / "heartbeat.json") or {}
            log = run_dir / "exp" / str(beat.get("experiment")) / "train.log"
            return beat.get("phase") in ("baseline", "training") and log.is_file() and "step" in log.read_text()

        assert wait_for(training, 240, a), (work / "A.log").read_text()[-3000:]
        tree = process_tree(a.pid)
        facts["sockets"] = listening_sockets(tree)
        facts["child_env_has_key"] = [
            SENTINEL.encode() in Path(f"/proc/{pid}/environ").read_bytes() for pid in tree
            if b"training.entry" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        b = start("B", ["research.max_experiments=6"])
        facts["b_code"] = b.wait(timeout=240)
        facts["b_output"] = (work / "B.log").read_text()
        facts["a_alive_after_b"] = a.poll() is None
        # SIGKILL for the orchestrator alone (the OOM killer's way): its training child, Prefect's temporary
        # server and the server's reaper must all go with it (training.entry.die_with_parent, prefect_ops/server_reaper.py).
        tree = process_tree(a.pid)
        a.kill()
        a.wait()
        wait_for(lambda: not living(tree), 20)
        facts["left_alive"] = {pid: command_line(pid) for pid in living(tree)}
        for pid in facts["left_alive"]:
            kill_tree(pid)
        facts["lock_left"] = (run_dir / "run.lock").is_file()
        c = start("C", ["research.max_experiments=6"])
        facts["c_code"] = c.wait(timeout=480)
        facts["c_output"] = (work / "C.log").read_text()
    finally:
        fake.stop()
    facts["requests"] = len(fake.message_requests())
    return facts


def test_prefect_server_listens_on_loopback_only(scenario):
    assert scenario["sockets"], "expected the temporary Prefect server's listening socket"
    assert all(is_loopback(address) for address in scenario["sockets"]), scenario["sockets"]


def test_training_process_gets_no_api_key(scenario):
    assert scenario["child_env_has_key"] == [False]


def test_an_orchestrator_killed_alone_leaves_no_process_behind(scenario):
    assert scenario["left_alive"] == {}


def test_second_run_of_the_same_tag_refuses_with_one_sentence(scenario):
    lines = [line for line in scenario["b_output"].splitlines() if line.strip()]
    assert scenario["b_code"] == 2 and scenario["a_alive_after_b"]
    assert len(lines) == 1 and lines[0].startswith(f"error: Run '{TAG}' is already running"), lines


def test_lock_of_a_killed_run_is_taken_over_and_the_run_resumes(scenario):
    assert scenario["lock_left"]
    rows = Ledger(scenario["run_dir"] / "results.tsv").rows()
    assert [row["exp"] for row in rows] == [0, 1, 2, 3]
    assert [row["status"] for row in rows][:2] == ["baseline", "baseline"]
    assert rows[2]["status"] in ("keep", "discard") and rows[2]["change"] == "optim.matrix_lr=0.05"
    assert rows[3]["status"] == "skip" and "interpolations" in rows[3]["error"]


def test_401_stops_the_run_with_one_sentence(scenario):
    lines = [line for line in scenario["c_output"].splitlines() if line.strip()]
    assert scenario["c_code"] == 2
    assert lines[-1].startswith("error: The Anthropic API rejected the key in ANTHROPIC_API_KEY (401)"), lines[-5:]
    assert "Traceback" not in scenario["c_output"]
    assert read_json(scenario["run_dir"] / "heartbeat.json")["phase"] == "failed"
    # 429 + answer, three invalid answers, one 401: the LLM was never asked twice for a recorded proposal.
    assert scenario["requests"] == 6


def test_the_sentinel_key_is_nowhere_on_disk(scenario):
    work, hits, searched = scenario["work"], [], 0
    for path in work.rglob("*"):
        if path.is_file() and not path.is_symlink():
            searched += 1
            if SENTINEL.encode() in path.read_bytes():
                hits.append(str(path.relative_to(work)))
    objects = subprocess.run(["git", "-C", str(scenario["run_dir"] / "repo"), "cat-file", "--batch-all-objects",
                              "--batch"], capture_output=True, check=True).stdout
    assert searched > 20 and any(p.suffix == ".db" for p in work.rglob("*.db"))
    assert objects and SENTINEL.encode() not in objects
    assert hits == [], hits
    json.dumps(hits)  # keep the list printable in the failure message
