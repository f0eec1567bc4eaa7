"""Which modules CI's mutation run checks (scripts/mutation.py --since-record), in a throwaway git repository."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts import mutation

MODULES = {"pkg/a.py": ["tests/test_a.py"], "pkg/b.py": ["tests/test_b.py", "tests/test_shared.py"]}
RECORD = ".ci/mutation-base"


def _git(root, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout.strip()


def _commit(root, files, message):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)
    return _git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    """A repository whose .ci/mutation-base records its first commit, with both modules and their tests."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    first = _commit(root, {"pkg/a.py": "A = 1\n", "pkg/b.py": "B = 1\n", "tests/test_a.py": "", "tests/test_b.py": "",
                           "tests/test_shared.py": "", "README": "x\n"}, "first")
    _commit(root, {RECORD: first + "\n"}, "record")
    return root


def test_a_module_committed_since_the_recorded_commit_is_selected_and_no_other(repo):
    _commit(repo, {"pkg/b.py": "B = 2\n", "README": "y\n"}, "change b")
    modules, why = mutation.since_record(repo, RECORD, MODULES)
    assert modules == ["pkg/b.py"] and "touched since" in why


def test_a_changed_claiming_test_selects_its_module_committed_or_not(repo):
    _commit(repo, {"tests/test_shared.py": "x = 1\n"}, "change a test of b")
    (repo / "tests" / "test_a.py").write_text("y = 1\n")  # not committed
    assert mutation.since_record(repo, RECORD, MODULES)[0] == ["pkg/a.py", "pkg/b.py"]


def test_nothing_touched_since_the_recorded_commit_selects_nothing(repo):
    _commit(repo, {"README": "y\n"}, "docs only")
    assert mutation.since_record(repo, RECORD, MODULES)[0] == []


def test_every_module_when_the_recorded_commit_is_not_in_a_shallow_clone(repo, tmp_path):
    _commit(repo, {"README": "y\n"}, "docs only")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    modules, why = mutation.since_record(clone, RECORD, MODULES)
    assert modules == ["pkg/a.py", "pkg/b.py"] and "shallow clone" in why


def test_every_module_without_the_record_file(repo):
    (repo / RECORD).unlink()
    assert mutation.since_record(repo, RECORD, MODULES)[0] == ["pkg/a.py", "pkg/b.py"]


def test_head_is_recorded_only_when_the_modules_and_their_tests_are_as_committed(repo):
    head = _commit(repo, {"pkg/a.py": "A = 2\n"}, "change a")
    before = (repo / RECORD).read_text()
    (repo / "tests" / "test_shared.py").write_text("z = 1\n")
    assert mutation.record_head(repo, RECORD, MODULES) is None and (repo / RECORD).read_text() == before
    _git(repo, "checkout", "--", "tests/test_shared.py")
    (repo / "README").write_text("not a module\n")
    assert mutation.record_head(repo, RECORD, MODULES) == head and (repo / RECORD).read_text() == head + "\n"
    assert mutation.since_record(repo, RECORD, MODULES)[0] == []


def test_a_spent_budget_checks_nothing_says_so_and_keeps_the_record(repo, monkeypatch, capsys):
    _commit(repo, {"pkg/a.py": "A = 2\n", "pkg/b.py": "B = 2\n"}, "change both")
    before = (repo / RECORD).read_text()
    monkeypatch.setattr(mutation, "ROOT", repo)
    monkeypatch.setattr(mutation, "MODULES", MODULES)
    monkeypatch.setattr(mutation, "run_module", lambda *args: pytest.fail("a module ran past the budget"))
    assert mutation.main(["--since-record", RECORD, "--budget", "0"]) == 0
    out = capsys.readouterr().out
    assert "pkg/a.py: NOT CHECKED" in out and "pkg/b.py: NOT CHECKED" in out and "2 not" in out
    assert (repo / RECORD).read_text() == before


@pytest.mark.parametrize("killed, code, recorded", [(10, 0, True), (8, 1, False)])
def test_a_complete_passing_run_records_head_and_a_failing_one_does_not(repo, monkeypatch, killed, code, recorded):
    head = _commit(repo, {"pkg/a.py": "A = 2\n"}, "change a")
    before = (repo / RECORD).read_text()
    ran = []
    monkeypatch.setattr(mutation, "ROOT", repo)
    monkeypatch.setattr(mutation, "MODULES", MODULES)
    monkeypatch.setattr(mutation, "run_module", lambda module, *args: ran.append(module) or {
        "module": module, "total": 10, "killed": killed, "timeouts": 0, "not_run": 0, "survived": [], "seconds": 1,
        "codes": {}})
    assert mutation.main(["--since-record", RECORD, "--budget", "600"]) == code
    assert ran == ["pkg/a.py"]
    assert (repo / RECORD).read_text() == (head + "\n" if recorded else before)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_module_past_its_time_is_stopped_with_the_processes_it_started(tmp_path):
    """--budget's stop: mutmut forks its test runs, and none may outlive the stop (the CI job would hang)."""
    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
              f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
              "time.sleep(120)\n")
    started = time.monotonic()
    assert mutation._run([sys.executable, "-c", script], tmp_path, dict(os.environ), 5) is None
    assert time.monotonic() - started < 60
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_a_module_within_its_time_gives_its_exit_code_and_output(tmp_path):
    done = mutation._run([sys.executable, "-c", "print('ran'); raise SystemExit(3)"], tmp_path, dict(os.environ), 60)
    assert done.returncode == 3 and done.stdout == "ran\n"
