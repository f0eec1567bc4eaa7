"""The chaos harness's eyes: what a run left on disk (ledger lines, experiment folders, the run repository), and
the audit of a finished chaos run: nothing lost, nothing doubled, nothing redone (bench/chaos.py runs it).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from research.records.layout import RunLayout  # noqa: E402
from training.run_config import ExperimentDir  # noqa: E402


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ledger_lines(run_dir: Path) -> list[str]:
    """The raw data lines of results.tsv (no parsing, so a doubled row would show)."""
    try:
        text = RunLayout(run_dir).results.read_text()
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
    for folder in sorted(RunLayout(run_dir).experiments.glob("*")):
        if not folder.name.isdigit():
            continue
        files = ExperimentDir(folder)
        out[int(folder.name)] = {
            # the checkpoint is deleted once evaluated (train.keep_checkpoints=false): a scored training was trained
            "trained": finished(files.metrics) and (files.checkpoint.is_file() or finished(files.evaluation)),
            "evaluated": finished(files.evaluation),
            "train_starts": count_lines(files.train_log, "step     1 "),
            "eval_runs": count_lines(files.eval_log, "val_bpb:"),
        }
    return out


# ------------------------------------------------------------------------------------------ the audit
def git(repo: Path, *args: str) -> str:
    from research.records.runrepo import git_env

    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=git_env(repo)).stdout


def audit(run_dir: Path, experiments: int, snapshots: list[dict]) -> dict:
    from research.records.ledger import Ledger

    lines = ledger_lines(run_dir)
    raw_exps = Counter(int(line.split("\t", 1)[0]) for line in lines)
    layout = RunLayout(run_dir)
    rows = Ledger(layout.results).rows()
    repo = layout.repo
    tags = {int(name[3:]): sha for name, sha in (l.split() for l in git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags/").splitlines())}
    config_mismatch, sha_mismatch = [], []
    for row in rows:
        exp = row["exp"]
        if row["status"] == "skip":
            continue
        committed = yaml.safe_load(git(repo, "show", f"exp{exp}:hparams.yaml"))
        config = read_json(ExperimentDir(layout.exp_dir(exp)).config) or {}
        # The block committed is the block trained, apart from the seed: a candidate's first run takes the
        # incumbent's most recent seed (the row's `seed`), the committed block keeps the run's base seed.
        if committed is None or {**committed, "seed": row.get("seed")} != config.get("hparams"):
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
    heartbeat = read_json(layout.heartbeat) or {}
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
