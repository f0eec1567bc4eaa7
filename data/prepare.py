"""prepare_dataset: make sure a dataset's corpus, tokenizer and shards exist and verify, through DVC.

DVC decides what to (re)build from dvc.lock, so a second call with nothing changed is a quick
"up to date"; the shards are then verified against their manifest (sha256) before anyone trains on them.
DVC runs as a subprocess: the orchestrator never imports DVC, and DVC's output streams through as
progress lines.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import paths
from data import layout
from data.errors import DataError
from data.shards import data_version, verify_shards
from data.sources import source_module
from data.spec import load_dataset_spec

DATA_ERROR_PREFIX = "DataError: "


def _require_git_repo(root: Path) -> None:
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root,
                                capture_output=True, text=True).stdout.strip() == "true"
    except FileNotFoundError:
        inside = False
    if not inside:
        raise DataError(f"{root} is not a git repository, and DVC needs one to run the data stages; run `git init` there or prepare from a clone of the project.")


def _dvc_command() -> list[str]:
    # The DVC installed beside this Python, so a virtual environment need not be activated.
    beside = Path(sys.executable).with_name("dvc")
    return [str(beside)] if beside.exists() else [shutil.which("dvc") or "dvc"]


def prepare_dataset(name: str, root: str | Path = ".", echo=None) -> dict:
    """Build (or confirm up to date) datasets/NAME via `dvc repro`, then verify and return its manifest.

    echo(line) receives DVC's progress lines (default: print to stderr). Errors are DataError sentences:
    unknown dataset, no git repository, empty local folder, download failure, corrupt output.
    """
    root = Path(root).resolve()
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    spec = load_dataset_spec(name, root / "conf")
    _require_git_repo(root)
    source_module(spec["source"]).check_ready(spec, root)  # e.g. an empty local folder: said now, not through DVC
    target = layout.dvc_target(spec)
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    # Stage commands say `python`: make it this interpreter, whatever PATH the caller has.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    echo(f"prepare {name}: dvc repro {target}")
    # --wait-for-lock: a second run started beside a first (two terminals, a suite, a test session's workers) waits
    # for the first's `dvc repro` instead of failing after DVC's 3 s; the lock dies with its process, never stale.
    process = subprocess.Popen([*_dvc_command(), "--wait-for-lock", "repro", target], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    data_error, tail = None, []
    for line in process.stdout:
        line = line.rstrip()
        if line.startswith(DATA_ERROR_PREFIX):
            data_error = line[len(DATA_ERROR_PREFIX):]
        elif line.strip():
            tail = (tail + [line])[-20:]
            echo(f"  {line}")
    if process.wait() != 0:
        if data_error:
            raise DataError(data_error)
        raise DataError(f"`dvc repro {target}` failed in {root} (its last lines are above); fix the cause and run `autoresearch prepare dataset={name}` again.")
    manifest = verify_shards(layout.shard_dir(name, root), layout.tokenizer_dir(name, root))
    echo(f"prepare {name}: {manifest['tokens']['train']:,} train and {manifest['tokens']['val']:,} val tokens, data version {manifest['data_version']}")
    return manifest


def prepare_data(dataset: str, data_dir: str | Path) -> dict:
    """prepare_dataset under the project (a no-op when up to date), then where the run's copy of its files is:
    {"dataset", "shard_dir", "tokenizer_dir", "data_version"}, the `data` section of every config.json."""
    prepare_dataset(dataset, root=paths.PROJECT_ROOT)
    base = Path(data_dir) / dataset
    shard_dir = base / "shards"
    if shard_dir.resolve() != layout.shard_dir(dataset, paths.PROJECT_ROOT).resolve():
        # prepare_dataset verified the DVC outputs under the project; a paths.data_dir elsewhere is what the run
        # trains on, so it is checked too (a flipped byte there went unnoticed before).
        verify_shards(shard_dir, base / "tokenizer")
    return {"dataset": dataset, "shard_dir": str(shard_dir), "tokenizer_dir": str(base / "tokenizer"),
            "data_version": data_version(shard_dir)}
