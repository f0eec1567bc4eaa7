"""Chaos: kill -9 the research flow at random moments in every phase, resume the same tag, check nothing is lost.

Each attempt runs `autoresearch run` (cpu preset, local proposer, steps budget, tiny model) as a subprocess.
A kill target is drawn for the attempt (a phase read from heartbeat.json, or a file event such as "a new expN
tag appeared" or "the ledger grew"), the harness waits for it, waits a random delay, and SIGKILLs the whole
process tree at once (orchestrator, training child, Prefect's server): what a power cut does. The "commit" gap
(tag written, training not started) lasts about 5 ms, too short to hit by polling, so for that target a `git`
shim goes first on PATH: it runs the real git and, after an expN tag (N >= 1) is written, waits to be killed.
The same tag is run again until the run finishes. Then the run is audited: rows, duplicates, lost experiments,
configs vs the run repository, orphan tags, redone trainings/evaluations, heartbeat (bench/chaos_audit.py).
Prints Markdown tables.

    .venv/bin/python bench/chaos.py --kills 20 --experiments 12 --seed 1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chaos_audit import ROOT, audit, audit_failures, count_lines, exp_snapshot, ledger_lines, read_json
from research.records.layout import RunLayout
from training.run_config import ExperimentDir

TAG = "chaos"
# Where a kill is aimed. Phases come from heartbeat.json; the events fall between two writes of one phase.
TARGETS = ("startup", "proposing", "commit", "training", "evaluating", "evaluated", "ledger", "deciding")
# A tiny model that still runs the real code: ~5 s of training and ~3 s of evaluation per experiment on 2 cores.
TINY = ["preset=cpu", "proposer=local", "budget.kind=steps", "train.eval_tokens=8192", "hparams.model.depth=2",
        "hparams.batch.total_batch_tokens=2048", "hparams.batch.device_batch_size=8"]


# Runs the real git; after `git ... tag ... expN` (N >= 1) succeeds it writes its arguments to the marker file
# and waits to be killed.
GIT_SHIM = """#!/bin/sh
"$CHAOS_REAL_GIT" "$@"
status=$?
tagging=0
for arg in "$@"; do
  case "$arg" in
    tag) tagging=1 ;;
    exp[1-9]*) if [ $status -eq 0 ] && [ $tagging -eq 1 ]; then echo "$*" > "$CHAOS_TAG_MARKER"; sleep 3600; fi ;;
  esac
done
exit $status
"""


def autoresearch_command() -> list[str]:
    script = Path(sys.executable).with_name("autoresearch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def process_tree(root_pid: int) -> list[int]:
    """root_pid and all its descendants (from /proc), so a kill reaches children in their own sessions."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_tree(root_pid: int) -> int:
    """SIGSTOP the whole tree first (nobody reacts to a sibling dying), then SIGKILL it; returns how many."""
    pids = process_tree(root_pid)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    return len(pids)


@dataclass
class Kill:
    attempt: int
    target: str
    phase: str          # heartbeat phase at the moment of the kill
    exp: int | None
    rows: int
    seconds: float      # since the attempt started
    processes: int


@dataclass
class Chaos:
    workdir: Path
    experiments: int
    steps: int
    seed: int
    extra: list = field(default_factory=list)
    attempt_timeout: float = 900.0
    kills: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    attempts: int = 0
    missed: list = field(default_factory=list)
    exit_codes: list = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.workdir / "runs" / TAG

    def command(self) -> list[str]:
        return [*autoresearch_command(), "run", *TINY, f"budget.steps={self.steps}", f"tag={TAG}",
                f"research.max_experiments={self.experiments}", f"paths.runs_dir={self.workdir / 'runs'}",
                *self.extra]

    @property
    def tag_marker(self) -> Path:
        return self.workdir / "git-shim" / "tagged"

    def environment(self, target: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "PREFECT_API_URL")}
        home = self.workdir / "prefect"  # shared by the attempts: a resumed run sees its cached task results
        env.update(PREFECT_HOME=str(home), PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(home / "storage"),
                   PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120", DO_NOT_TRACK="1",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1")
        if target == "commit":
            env.update(self._git_shim(env["PATH"]))
        return env

    def _git_shim(self, path: str) -> dict[str, str]:
        """The environment that puts GIT_SHIM first on PATH (names without GIT_: the run repository strips those)."""
        real_git = shutil.which("git", path=path)
        if real_git is None:
            raise RuntimeError("git is not on PATH; the chaos harness needs it to pause after a tag is written.")
        folder = self.tag_marker.parent
        folder.mkdir(parents=True, exist_ok=True)
        self.tag_marker.unlink(missing_ok=True)
        shim = folder / "git"
        shim.write_text(GIT_SHIM)
        shim.chmod(0o755)
        return {"PATH": f"{folder}{os.pathsep}{path}", "CHAOS_REAL_GIT": real_git,
                "CHAOS_TAG_MARKER": str(self.tag_marker)}

    # One attempt: run until it ends, or until `target` is reached (then kill it).
    def attempt(self, target: str | None, rng: random.Random) -> int | None:
        self.attempts += 1
        log = open(self.workdir / f"attempt-{self.attempts:02d}.log", "w")
        started = time.monotonic()
        proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.environment(target), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        rows0 = len(ledger_lines(self.run_dir))
        startup_at = rng.uniform(1.0, 12.0)
        try:
            while proc.poll() is None:
                if time.monotonic() - started > self.attempt_timeout:
                    kill_tree(proc.pid)
                    raise RuntimeError(f"attempt {self.attempts} ran past {self.attempt_timeout:.0f} s")
                if target and self._reached(target, started, startup_at, rows0):
                    self._delay(target, rng, proc)
                    heartbeat = read_json(RunLayout(self.run_dir).heartbeat) or {}
                    if proc.poll() is not None:
                        break
                    count = kill_tree(proc.pid)
                    proc.wait()
                    self.kills.append(Kill(self.attempts, target, heartbeat.get("phase", "none"),
                                           heartbeat.get("experiment"), len(ledger_lines(self.run_dir)),
                                           round(time.monotonic() - started, 1), count))
                    self.snapshots.append(exp_snapshot(self.run_dir))
                    return None
                time.sleep(0.02)
        finally:
            log.close()
        if target:
            self.missed.append(target)
        self.exit_codes.append(proc.returncode)
        return proc.returncode

    def _reached(self, target, started, startup_at, rows0) -> bool:
        run_dir, layout = self.run_dir, RunLayout(self.run_dir)
        if target == "startup":
            return time.monotonic() - started >= startup_at
        heartbeat = read_json(layout.heartbeat) or {}
        phase, exp = heartbeat.get("phase"), heartbeat.get("experiment")
        if heartbeat.get("pid") is None or time.time() - heartbeat.get("time", 0) > time.monotonic() - started:
            return False  # a beat from an earlier attempt
        if target == "proposing":
            return phase == "proposing"
        if target == "commit":  # the git shim has written a new expN tag and holds the run there
            return self.tag_marker.is_file()
        if target == "training":
            return phase in ("training", "baseline") and exp is not None and \
                count_lines(ExperimentDir(layout.exp_dir(exp)).train_log, "step ") > 0
        if target == "evaluating":
            return phase == "evaluating"
        if target == "evaluated":  # eval.json written, the decision (ledger row) not yet
            return phase == "evaluating" and ExperimentDir(layout.exp_dir(exp)).evaluation.is_file() and \
                len(ledger_lines(run_dir)) <= exp
        if target == "ledger":  # the row was just written: main and the heartbeat may not have moved yet
            return len(ledger_lines(run_dir)) > rows0
        if target == "deciding":
            return phase == "deciding"
        raise ValueError(target)

    @staticmethod
    def _delay(target, rng, proc) -> None:
        # File events are killed at once (the gap after them is the point); phases after a random delay.
        delays = {"proposing": 0.3, "training": 4.0, "evaluating": 2.0, "deciding": 0.3}
        end = time.monotonic() + rng.uniform(0.0, delays.get(target, 0.0))
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.01)

    def run(self, kills: int) -> dict:
        rng = random.Random(self.seed)
        plan = [TARGETS[i % len(TARGETS)] for i in range(kills)]
        rng.shuffle(plan)
        return self.run_plan(plan, rng)

    def run_plan(self, plan: list[str], rng: random.Random) -> dict:
        """One kill per target of `plan` (resuming after each), the finishing run, a plain re-run, the audit."""
        started = time.monotonic()
        for target in plan:
            if self.attempt(target, rng) is not None:
                break  # the run finished before the target came: the remaining kills have nothing to hit
        if not self.exit_codes:
            self.attempt(None, rng)
        # One more plain re-run of a finished run must change nothing (idempotent end state).
        results = RunLayout(self.run_dir).results
        before = results.read_bytes()
        self.attempt(None, rng)
        summary = audit(self.run_dir, self.experiments, self.snapshots)
        summary.update(attempts=self.attempts, resumes=self.attempts - 1, kills=len(self.kills),
                       missed=list(self.missed), exit_codes=list(self.exit_codes),
                       rerun_changed_ledger=results.read_bytes() != before,
                       seconds=round(time.monotonic() - started, 1))
        return summary


def tables(chaos: Chaos, summary: dict) -> str:
    by_target = Counter(k.target for k in chaos.kills)
    by_phase = Counter(k.phase for k in chaos.kills)
    out = ["| kill aimed at | kills | heartbeat phase seen at the kill |", "|---|---:|---|"]
    for target in TARGETS:
        phases = Counter(k.phase for k in chaos.kills if k.target == target)
        out.append(f"| {target} | {by_target.get(target, 0)} | "
                   + ", ".join(f"{p} {n}" for p, n in sorted(phases.items())) + " |")
    out += ["", "| heartbeat phase at kill | kills |", "|---|---:|"]
    out += [f"| {phase} | {n} |" for phase, n in sorted(by_phase.items())]
    s = summary
    out += ["", "| kills | resumes | rows (expected) | duplicates | lost | config != commit | row sha != tag | "
            "orphan tags | unreachable commits | trainings started / finished | redone trainings | "
            "redone evaluations | heartbeat ok | main ok | re-run changed ledger | seconds |",
            "|" + "---:|" * 16,
            f"| {s['kills']} | {s['resumes']} | {s['rows']} ({chaos.experiments}) | {s['duplicates']} | "
            f"{len(s['lost'])} | {len(s['config_mismatch'])} | {len(s['sha_mismatch'])} | {len(s['orphan_tags'])} | "
            f"{s['unreachable_commits']} | {s['train_starts']} / {s['trainings']} | {s['redone_trainings']} | "
            f"{s['redone_evaluations']} | {s['heartbeat_ok']} | {s['main_ok']} | {s['rerun_changed_ledger']} | "
            f"{s['seconds']} |"]
    if s["missed"]:
        out.append(f"\nTargets not reached before the run ended: {', '.join(s['missed'])}.")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--experiments", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="default: a new temporary folder (kept, for inspection)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="autoresearch-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    chaos = Chaos(workdir, args.experiments, args.steps, args.seed)
    summary = chaos.run(args.kills)
    print(tables(chaos, summary))
    print(f"\nworkdir: {workdir}")
    print(json.dumps(summary, indent=1, default=str))
    failures = audit_failures(summary, args.experiments)
    if failures:
        print("\naudit failed: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
