"""Mutation testing of the modules whose bugs would make a night's conclusions wrong (`make mutation`).

mutmut 3 (pinned in pyproject's dev extra) changes one small thing at a time in a module (a `<` into `<=`, a
constant into another, a call dropped) and runs the tests; a mutant the tests do not notice ("survived") is
behaviour no test pins down. Each module is run on its own, against only the fast unit tests that claim it
(MODULES below), so one module takes minutes on two cores and CI can run just the modules a change touches:

    python scripts/mutation.py                         # every module in MODULES
    python scripts/mutation.py research/judging/sprt.py        # one module (or several)
    python scripts/mutation.py --changed origin/main   # the modules that differ from a git ref
    python scripts/mutation.py --since-record .ci/mutation-base --budget 1800   # CI (.ci/run), below

CI runs the modules touched since the commit recorded in .ci/mutation-base (their files or the tests claiming
them, committed since or not); every module when that commit is not in the clone (a shallow clone, or a commit
rewritten away). A run that checks every selected module and passes, in a working tree where none of them or
their tests has uncommitted changes, writes HEAD into the file: commit it to move the base on. --budget bounds
the whole run: no module starts once it is spent, a module running when it runs out is stopped, and both are
printed as not checked (the exit code stays 0 for them; the file is then left as it was).

mutmut reads its settings from ./pyproject.toml only, and the test selection differs per module, so each
module runs in its own copy of the working tree, mutants/<module>/, whose pyproject.toml is the project's with
[tool.mutmut] completed for that module (only_mutate, the test files). The shared settings stay in the
project's [tool.mutmut]. Each run starts from a fresh copy; `--reuse` keeps mutmut's verdicts from the last
run (faster while writing tests: the survivors are retested, the rest stand).
Prints killed/total per module and each survivor's name; `--diff` prints each survivor's diff too. The exit
code is 1 when a module scores under --goal (90% by default), so CI can gate on it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mutmut reads its settings with `toml` there, and depends on it
    import toml as tomllib
ROOT = Path(__file__).resolve().parent.parent
RECORD = ".ci/mutation-base"  # the commit CI's mutation run counts from (--since-record)

# Module -> the fast unit tests that claim it. A test file here must not be marked slow as a whole; slow tests in
# it are skipped by pyproject's `-m "not slow"`.
MODULES: dict[str, list[str]] = {
    "research/judging/sprt.py": ["tests/test_decide_paired.py", "tests/test_gap_judgement.py"],
    "research/judging/pairing.py": ["tests/test_decide_paired.py", "tests/test_settle.py", "tests/test_drift_control.py",
                            "tests/test_decide_rules.py", "tests/test_gap_judgement.py"],
    "research/judging/verdict.py": ["tests/test_decide.py", "tests/test_decide_noise.py", "tests/test_decide_paired.py",
                           "tests/test_decide_rules.py", "tests/test_gap_judgement.py"],
    "research/judging/finalize.py": ["tests/test_finalize_conclusions.py", "tests/test_finalize.py"],
    "hardware/tiers.py": ["tests/test_hardware_tiers.py"],
    "hardware/cpu.py": ["tests/test_hardware_cpu.py"],
    "flows/pool_watch.py": ["tests/test_pool_watch.py"],
    "research/reporting/run_costs.py": ["tests/test_run_costs.py"],
    # The plot's geometry (its pure functions); the drawing calls are marked `no mutate` in the module, and the
    # figure tests (tests/test_progress_plot.py, ~25 s a run) would be the only ones to run for them.
    "research/reporting/progress_plot.py": ["tests/test_progress_plot_geometry.py"],
    # Which documents go to the held-out test split, and the corpus files.
    "data/corpus.py": ["tests/test_corpus_split.py", "tests/test_data_test_split.py", "tests/test_data_local.py"],
}

# mutmut's exit codes (mutmut/stats.py) in the three groups the score needs.
KILLED = {1, 3}                 # a test failed (3: pytest's internal error, a kill too)
TIMEOUT = {36, -24, 24, 152, 255}  # the mutant made the tests hang: noticed, counted as killed
NOT_RUN = {None, 2}             # not checked yet, or interrupted


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def changed_modules(base: str, root: Path = ROOT, modules: dict[str, list[str]] = MODULES) -> list[str]:
    """The MODULES files that differ from `base` (committed or not), and those whose claiming tests do."""
    names = subprocess.run(["git", "diff", "--name-only", base, "--"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    names += subprocess.run(["git", "ls-files", "-o", "--exclude-standard"], cwd=root, check=True,
                            capture_output=True, text=True).stdout.split()
    touched = set(names)
    # A changed test can only change the module's score, so its module is rerun too.
    return [module for module, tests in modules.items() if module in touched or touched & set(tests)]


def recorded_commit(root: Path = ROOT, record: str = RECORD) -> str | None:
    """The commit written in `record` when this clone has it; None when the file or the commit is missing."""
    try:
        commit = (root / record).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return commit if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0 else None


def since_record(root: Path = ROOT, record: str = RECORD,
                 modules: dict[str, list[str]] = MODULES) -> tuple[list[str], str]:
    """(the modules to run, why): those touched since the recorded commit, or all when the clone lacks it."""
    commit = recorded_commit(root, record)
    if commit is None:
        return list(modules), (f"no commit of {record} in this clone (a shallow clone, or the file is missing): "
                               f"every module")
    return changed_modules(commit, root, modules), f"the modules touched since {commit[:12]} ({record})"


def record_head(root: Path = ROOT, record: str = RECORD, modules: dict[str, list[str]] = MODULES) -> str | None:
    """Write HEAD into `record` when no module or claiming test has uncommitted changes; return what was written."""
    paths = sorted({*modules, *(test for tests in modules.values() for test in tests)})
    if _git(root, "status", "--porcelain", "--", *paths).stdout.strip():
        return None  # what was tested is not HEAD's
    head = _git(root, "rev-parse", "HEAD").stdout.strip()
    if not head:
        return None
    (root / record).write_text(head + "\n")
    return head


def working_tree_files() -> list[str]:
    """Tracked files as they are on disk plus untracked ones git does not ignore: the state being tested."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


def prepare(module: str, workdir: Path) -> None:
    """workdir: a copy of the working tree with a pyproject.toml whose [tool.mutmut] targets `module`."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in working_tree_files():
        target = workdir / name
        source = ROOT / name
        # Same size and mtime: unchanged, and mutmut's cache of this copy stays valid.
        if target.exists() and target.stat().st_mtime == source.stat().st_mtime \
                and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    text = (ROOT / "pyproject.toml").read_text()
    base = tomllib.loads(text).get("tool", {}).get("mutmut", {})
    package = module.split("/")[0]
    settings = dict(base)
    settings["source_paths"] = [package]
    settings["only_mutate"] = [module]
    settings["pytest_add_cli_args_test_selection"] = MODULES[module]
    # Everything else the tests read (conf/, the other packages, test data) goes into mutmut's copy too.
    tops = sorted({name.split("/")[0] for name in working_tree_files()} - {package, "pyproject.toml"})
    settings["also_copy"] = tops
    # Drop the project's [tool.mutmut] table and write the module's; JSON strings and lists are valid TOML.
    stripped = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    table = "\n[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    new = stripped.rstrip("\n") + "\n" + table
    pyproject = workdir / "pyproject.toml"
    if not pyproject.exists() or pyproject.read_text() != new:
        pyproject.write_text(new)


def tally(workdir: Path, module: str) -> dict:
    meta = workdir / "mutants" / (module + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    killed = [k for k, c in codes.items() if c in KILLED]
    timeouts = [k for k, c in codes.items() if c in TIMEOUT]
    not_run = [k for k, c in codes.items() if c in NOT_RUN]
    survived = sorted(k for k in codes if k not in killed and k not in timeouts and k not in not_run)
    return {"module": module, "total": len(codes), "killed": len(killed) + len(timeouts), "timeouts": len(timeouts),
            "not_run": len(not_run), "survived": survived, "codes": codes}


def _run(command: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess | None:
    """Run mutmut; None when it ran past `timeout` (it and the test processes it forked are killed)."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def run_module(module: str, max_children: int, timeout: float, show_diff: bool, reuse: bool) -> dict:
    workdir = ROOT / "mutants" / module.replace("/", "__").removesuffix(".py")
    if not reuse:
        # mutmut keeps a mutant's verdict until its function changes: a test weakened since would leave a stale
        # "killed". A fresh copy is the score of the tree as it is.
        shutil.rmtree(workdir, ignore_errors=True)
    prepare(module, workdir)
    mutmut = Path(sys.executable).with_name("mutmut")
    started = time.monotonic()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    command = [str(mutmut), "run", "--max-children", str(max_children)]
    proc = _run(command, workdir, env, timeout)
    result = tally(workdir, module)
    if reuse and result["survived"] and proc is not None and proc.returncode == 0:
        # Reused verdicts stand unless a mutant is named: the survivors are named, so a new test can kill them.
        proc = _run(command + result["survived"], workdir, env, timeout - (time.monotonic() - started))
        result = tally(workdir, module)
    result["seconds"] = round(time.monotonic() - started)
    if proc is None:
        result["stopped"] = True  # out of time: not checked
        return result
    if proc.returncode != 0 or not result["total"]:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        result["error"] = f"mutmut exited {proc.returncode}"
    if show_diff:
        for name in result["survived"]:
            diff = subprocess.run([str(mutmut), "show", name], cwd=workdir, capture_output=True, text=True).stdout
            result.setdefault("diffs", {})[name] = diff
    return result


def _record(record: str) -> None:
    head = record_head(ROOT, record, MODULES)
    print(f"mutation: {record} now holds {head} (commit it to count from there)" if head else
          f"mutation: {record} left as it was (a module or its tests has uncommitted changes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module files (default: every module in MODULES)")
    parser.add_argument("--changed", metavar="REF", help="only the modules that differ from this git ref")
    parser.add_argument("--since-record", metavar="FILE", nargs="?", const=RECORD,
                        help=f"only the modules touched since the commit in FILE (default {RECORD}), every module "
                             f"when the clone lacks it; a complete passing run writes HEAD into FILE")
    parser.add_argument("--budget", type=float, metavar="SECONDS",
                        help="the whole run's time: no module starts after it, the one running is stopped")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--goal", type=float, default=0.90, help="the least share killed per module")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per module")
    parser.add_argument("--diff", action="store_true", help="print each survivor's diff")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--reuse", action="store_true",
                        help="keep mutmut's verdicts from the last run of a module (faster; survivors are retested)")
    args = parser.parse_args(argv)
    why = ""
    if args.modules:
        modules = args.modules
    elif args.since_record:
        modules, why = since_record(ROOT, args.since_record, MODULES)
    else:
        modules = changed_modules(args.changed) if args.changed else list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"not a mutation-tested module: {', '.join(unknown)} (known: {', '.join(MODULES)})")
    if why:
        print(f"mutation: {why}: {', '.join(modules) or 'none'}", flush=True)
    if not modules:
        print("mutation: no mutation-tested module changed")
        if args.since_record:
            _record(args.since_record)
        return 0
    started = time.monotonic()
    results, failed, unchecked = [], False, []
    for module in modules:
        left = args.budget - (time.monotonic() - started) if args.budget is not None else args.timeout
        if left <= 0:
            unchecked.append(module)
            print(f"{module}: NOT CHECKED (the {args.budget:.0f} s budget is spent)", flush=True)
            continue
        result = run_module(module, args.max_children, min(args.timeout, left), args.diff, args.reuse)
        if result.get("stopped"):
            unchecked.append(module)
            print(f"{module}: NOT CHECKED (stopped after {result['seconds']} s, out of time)", flush=True)
            continue
        results.append(result)
        share = result["killed"] / result["total"] if result["total"] else 0.0
        low = share < args.goal or "error" in result
        failed |= low
        print(f"{module}: {result['killed']}/{result['total']} killed ({share:.1%}"
              f"{', ' + str(result['timeouts']) + ' by timeout' if result['timeouts'] else ''}"
              f"{', ' + str(result['not_run']) + ' not run' if result['not_run'] else ''}) in {result['seconds']} s"
              f"{'  BELOW ' + format(args.goal, '.0%') if low else ''}", flush=True)
        for name in result["survived"]:
            print(f"  survived: {name} ({result['codes'][name]})")
            if args.diff:
                print(result["diffs"][name])
    budget = f" (budget {args.budget:.0f} s)" if args.budget is not None else ""
    print(f"mutation: {len(results)} module(s) checked, {len(unchecked)} not, in "
          f"{round(time.monotonic() - started)} s{budget}")
    if args.since_record and not failed and not unchecked:
        _record(args.since_record)
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k not in ("codes", "diffs")}
                                               for r in results], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
