"""Chaos: kill -9 the research flow at random moments in every phase, resume the same tag, check nothing is lost.

Each attempt runs `autoresearch run` (cpu preset, local proposer, steps budget, tiny model) as a subprocess.
A kill target is drawn for the attempt (a phase read from heartbeat.json, or a file event such as "a new expN
tag appeared" or "the ledger grew"), the harness waits for it, waits a random delay, and SIGKILLs the whole
process tree at once (orchestrator, training child, Prefect's server): what a power cut does. The "commit" gap
(tag written, training not started) lasts about 5 ms, too short to hit by polling, so for that target a `git`
shim goes first on PATH: it runs the real git and, after an expN tag (N >= 1) is written, waits to be killed.
The same tag is run again until the run finishes. Then the run is audited: rows, duplicates, lost experiments,
configs vs the run repository, orphan tags, redone trainings/evaluations, heartbeat. Prints Markdown tables.

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

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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
    return [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]


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


# ------------------------------------------------------------------------------------------ observing a run
def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ledger_lines(run_dir: Path) -> list[str]:
    """The raw data lines of results.tsv (no parsing, so a doubled row would show)."""
    try:
        text = (run_dir / "results.tsv").read_text()
    except OSError:
        return []
    return [line for line in text.split("\n")[1:] if line.strip()]


def count_lines(path: Path, prefix: str) -> int:
    try:
        return sum(1 for line in path.read_text(errors="replace").splitlines() if line.startswith(prefix))
    except OSError:
        return 0


def finished(path: Path) -> bool:
    data = read_json(path)
    return bool(data) and data.get("status") == "ok"


def exp_snapshot(run_dir: Path) -> dict[int, dict]:
    """Per experiment folder: whether training/evaluation had finished, and how many times each had started."""
    out = {}
    for folder in sorted((run_dir / "exp").glob("*")):
        if not folder.name.isdigit():
            continue
        out[int(folder.name)] = {
            "trained": finished(folder / "metrics.json") and (folder / "checkpoint.npz").is_file(),
            "evaluated": finished(folder / "eval.json"),
            "train_starts": count_lines(folder / "train.log", "step     1 "),
            "eval_runs": count_lines(folder / "eval.log", "val_bpb:"),
        }
    return out


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
                    heartbeat = read_json(self.run_dir / "heartbeat.json") or {}
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
        run_dir = self.run_dir
        if target == "startup":
            return time.monotonic() - started >= startup_at
        heartbeat = read_json(run_dir / "heartbeat.json") or {}
        phase, exp = heartbeat.get("phase"), heartbeat.get("experiment")
        if heartbeat.get("pid") is None or time.time() - heartbeat.get("time", 0) > time.monotonic() - started:
            return False  # a beat from an earlier attempt
        if target == "proposing":
            return phase == "proposing"
        if target == "commit":  # the git shim has written a new expN tag and holds the run there
            return self.tag_marker.is_file()
        if target == "training":
            return phase in ("training", "baseline") and exp is not None and \
                count_lines(run_dir / "exp" / str(exp) / "train.log", "step ") > 0
        if target == "evaluating":
            return phase == "evaluating"
        if target == "evaluated":  # eval.json written, the decision (ledger row) not yet
            return phase == "evaluating" and (run_dir / "exp" / str(exp) / "eval.json").is_file() and \
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
        before = (self.run_dir / "results.tsv").read_bytes()
        self.attempt(None, rng)
        summary = audit(self.run_dir, self.experiments, self.snapshots)
        summary.update(attempts=self.attempts, resumes=self.attempts - 1, kills=len(self.kills),
                       missed=list(self.missed), exit_codes=list(self.exit_codes),
                       rerun_changed_ledger=(self.run_dir / "results.tsv").read_bytes() != before,
                       seconds=round(time.monotonic() - started, 1))
        return summary


# ------------------------------------------------------------------------------------------ the audit
def git(repo: Path, *args: str) -> str:
    from research.runrepo import git_env

    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=git_env(repo)).stdout


def audit(run_dir: Path, experiments: int, snapshots: list[dict]) -> dict:
    from research.ledger import Ledger

    lines = ledger_lines(run_dir)
    raw_exps = Counter(int(line.split("\t", 1)[0]) for line in lines)
    rows = Ledger(run_dir / "results.tsv").rows()
    repo = run_dir / "repo"
    tags = {int(name[3:]): sha for name, sha in (l.split() for l in git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags/").splitlines())}
    config_mismatch, sha_mismatch = [], []
    for row in rows:
        exp = row["exp"]
        if row["status"] == "skip":
            continue
        committed = yaml.safe_load(git(repo, "show", f"exp{exp}:hparams.yaml"))
        config = read_json(run_dir / "exp" / str(exp) / "config.json") or {}
        if committed != config.get("hparams"):
            config_mismatch.append(exp)
        if row.get("commit_sha") != tags.get(exp):
            sha_mismatch.append(exp)
    recorded = {row["exp"] for row in rows}
    committed_exps = {row["exp"] for row in rows if row["status"] != "skip"}
    orphan_tags = sorted(set(tags) - committed_exps)
    unreachable = [l for l in git(repo, "fsck", "--unreachable", "--no-reflogs").splitlines() if "commit" in l]
    keeps = [row for row in rows if row["status"] == "keep"]
    main = git(repo, "rev-parse", "main").strip()
    final = exp_snapshot(run_dir)
    redone_train = redone_eval = 0
    for exp, now in final.items():
        done = [s[exp] for s in snapshots if exp in s]
        redone_train += sum(1 for s in done if s["trained"] and now["train_starts"] > s["train_starts"]) > 0
        redone_eval += sum(1 for s in done if s["evaluated"] and now["eval_runs"] > s["eval_runs"]) > 0
    heartbeat = read_json(run_dir / "heartbeat.json") or {}
    statuses = Counter(row["status"] for row in rows)
    best = [row["best_val_bpb"] for row in rows if row.get("best_val_bpb") is not None]
    heartbeat_ok = (heartbeat.get("phase") == "done" and heartbeat.get("counts") == dict(statuses)
                    and heartbeat.get("best_val_bpb") == (best[-1] if best else None))
    return {
        "rows": len(rows),
        "duplicates": sum(n - 1 for n in raw_exps.values() if n > 1),
        "lost": sorted(set(range(experiments)) - recorded),
        "extra": sorted(recorded - set(range(experiments))),
        "config_mismatch": config_mismatch,
        "sha_mismatch": sha_mismatch,
        "orphan_tags": orphan_tags,
        "unreachable_commits": len(unreachable),
        "main_ok": main == (keeps[-1]["commit_sha"] if keeps else tags.get(0)),
        "train_starts": sum(s["train_starts"] for s in final.values()),
        "trainings": len([e for e in final.values() if e["trained"]]),
        "redone_trainings": redone_train,
        "redone_evaluations": redone_eval,
        "heartbeat_ok": heartbeat_ok,
        "statuses": dict(statuses),
    }


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


def audit_failures(summary: dict, experiments: int) -> list[str]:
    """What the audit of a finished chaos run found wrong, one phrase each; [] when the run held."""
    s = summary
    checks = {
        f"{s['rows']} rows instead of {experiments}": s["rows"] == experiments,
        f"{s['duplicates']} duplicate rows": s["duplicates"] == 0,
        f"lost experiments {s['lost']}": not s["lost"],
        f"unexpected experiments {s['extra']}": not s["extra"],
        f"config != commit for {s['config_mismatch']}": not s["config_mismatch"],
        f"row sha != tag for {s['sha_mismatch']}": not s["sha_mismatch"],
        f"orphan tags {s['orphan_tags']}": not s["orphan_tags"],
        f"{s['unreachable_commits']} unreachable commits": s["unreachable_commits"] == 0,
        f"{s['redone_trainings']} finished trainings run again": s["redone_trainings"] == 0,
        f"{s['redone_evaluations']} finished evaluations run again": s["redone_evaluations"] == 0,
        "heartbeat disagrees with the ledger": s["heartbeat_ok"],
        "main is not the last keep": s["main_ok"],
        "the plain re-run of the finished run changed results.tsv": not s["rerun_changed_ledger"],
        f"exit codes {s['exit_codes']}": all(code == 0 for code in s["exit_codes"]),
    }
    return [problem for problem, held in checks.items() if not held]


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
