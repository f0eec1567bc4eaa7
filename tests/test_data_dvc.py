"""The DVC pipeline end to end: a fresh git repository holding the project's data files builds the
bundled dataset with a plain `dvc repro` and no network; prepare_dataset drives the same stages."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from data.errors import DataError
from data.prepare import prepare_dataset

ROOT = Path(__file__).resolve().parent.parent
# What a clone needs to run the data pipeline (copied from the working tree, so uncommitted files count).
PIPELINE_FILES = ["dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", ".gitignore", "data", "conf/dataset"]


def _env(repo: Path) -> dict:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # Beside the repository (not in it, not /var/tmp/dvc): tests leave nothing outside their tmp dirs.
    env["DVC_SITE_CACHE_DIR"] = str(repo.with_name(repo.name + "-dvc-site"))
    return env


@contextmanager
def edited_spec(clone: Path, name: str, edit):
    """conf/dataset/<name>.yaml of the module-shared clone changed by `edit(text)` for one test, then restored."""
    path = clone / "conf" / "dataset" / f"{name}.yaml"
    original = path.read_text()
    path.write_text(edit(original))
    try:
        yield
    finally:
        path.write_text(original)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A temporary git repository with the pipeline files committed, like a fresh clone."""
    repo = tmp_path_factory.mktemp("clone")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PIPELINE_FILES:
        source = ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=ignore)
        else:
            shutil.copy2(source, repo / name)
    env = _env(repo)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "data pipeline"]):
        subprocess.run(command, cwd=repo, env=env, check=True)
    return repo


@pytest.mark.slow
def test_plain_dvc_repro_builds_the_bundled_dataset_offline(clone):
    env = _env(clone)
    dvc = str(Path(sys.executable).with_name("dvc"))
    result = subprocess.run([dvc, "repro"], cwd=clone, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "datasets/climbmix" not in result.stdout  # downloads live in another pipeline file
    bundled = clone / "datasets" / "bundled"
    assert (bundled / "shards" / "manifest.json").is_file()
    assert (bundled / "tokenizer" / "token_bytes.npy").is_file()
    assert (clone / "dvc.lock").is_file()
    assert not (clone / "datasets" / "climbmix").exists()
    again = subprocess.run([dvc, "repro"], cwd=clone, env=env, capture_output=True, text=True)
    assert "up to date" in again.stdout
    # Outputs are git-ignored: the build leaves the repository clean apart from dvc.lock.
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, env=env, capture_output=True, text=True).stdout
    assert status.split() == ["??", "dvc.lock"]


@pytest.mark.slow
def test_prepare_dataset_verifies_and_is_fast_when_up_to_date(clone, monkeypatch):
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", _env(clone)["DVC_SITE_CACHE_DIR"])
    lines = []
    manifest = prepare_dataset("bundled", clone, echo=lines.append)
    assert manifest["dataset"] == "bundled" and manifest["tokens"]["val"] > 65536
    lines.clear()
    assert prepare_dataset("bundled", clone, echo=lines.append) == manifest
    assert any("up to date" in line or "didn't change" in line for line in lines)


@pytest.mark.slow
def test_prepare_waits_for_a_dvc_repro_that_holds_the_lock_instead_of_failing(clone):
    """Two runs started together both prepare: the second waits for the first's `dvc repro`. Held here for 4.5 s,
    just past the 3 s after which DVC gives up without --wait-for-lock."""
    import zc.lockfile

    (clone / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    lock = zc.lockfile.LockFile(str(clone / ".dvc" / "tmp" / "lock"))  # what a running `dvc repro` holds
    releaser = threading.Timer(4.5, lock.close)
    releaser.start()
    started = time.monotonic()
    try:
        manifest = prepare_dataset("bundled", clone, echo=lambda line: None)
    finally:
        releaser.join()
    assert time.monotonic() - started >= 4.5 and manifest["tokens"]["train"] > 0


def test_prepare_outside_a_git_repository(tmp_path):
    shutil.copytree(ROOT / "conf" / "dataset", tmp_path / "conf" / "dataset")
    with pytest.raises(DataError, match="not a git repository"):
        prepare_dataset("bundled", tmp_path, echo=lambda line: None)


def test_prepare_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="Unknown dataset 'nope'"):
        prepare_dataset("nope", ROOT, echo=lambda line: None)


@pytest.mark.parametrize("state", ["is empty", "does not exist"])
def test_prepare_local_with_an_empty_or_missing_folder(clone, monkeypatch, tmp_path, state):
    folder = tmp_path / "texts"
    if state == "is empty":
        folder.mkdir()
        (folder / "notes.md").write_text("not a .txt, .jsonl or .parquet file")
    monkeypatch.setenv("AUTORESEARCH_LOCAL_DIR", str(folder))
    with pytest.raises(DataError, match=f"{folder} {state}; put .txt"):
        prepare_dataset("local", clone, echo=lambda line: None)


@pytest.mark.slow
def test_prepare_local_folder_through_its_pipeline(clone, monkeypatch, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(400)))
    monkeypatch.setenv("AUTORESEARCH_LOCAL_DIR", str(folder))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", _env(clone)["DVC_SITE_CACHE_DIR"])
    manifest = prepare_dataset("local", clone, echo=lambda line: None)
    assert manifest["dataset"] == "local" and manifest["tokens"]["train"] > 0
    lines = []
    prepare_dataset("local", clone, echo=lines.append)  # corpus re-scanned, identical: later stages skip
    assert any("shards' didn't change" in line for line in lines), lines


@pytest.mark.slow
def test_prepare_huggingface_dataset_from_a_local_hub(clone, monkeypatch):
    from test_data_huggingface import FakeHub, _parquet

    hub = FakeHub()
    hub.thread.start()
    try:
        stories = [f"Once upon a time there was a cat number {i}. It liked milk." for i in range(300)]
        hub.add("default/train/0000.parquet", _parquet(stories[:250]), revision="refs/convert/parquet")
        hub.add("default/validation/0000.parquet", _parquet(stories[250:]), revision="refs/convert/parquet")
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("DVC_SITE_CACHE_DIR", _env(clone)["DVC_SITE_CACHE_DIR"])
        with edited_spec(clone, "tinystories", lambda text: text.replace("roneneldan/TinyStories", "someone/tiny-parquet")):
            manifest = prepare_dataset("tinystories", clone, echo=lambda line: None)
        assert manifest["documents"] == {"train": 250, "val": 50}
        assert (clone / "data" / "pipelines" / "huggingface" / "dvc.lock").is_file()
    finally:
        hub.server.shutdown()
        hub.server.server_close()


@pytest.mark.slow
def test_prepare_huggingface_without_network_is_one_sentence(clone, monkeypatch):
    import socket

    with socket.socket() as probe:  # nobody listens on this port: like a machine with no network
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", _env(clone)["DVC_SITE_CACHE_DIR"])
    def fail_fast(text):
        return text + "download_retries: 1\ndownload_backoff_seconds: 0.01\n"

    with edited_spec(clone, "fineweb-edu", fail_fast), pytest.raises(DataError) as error:
        prepare_dataset("fineweb-edu", clone, echo=lambda line: None)
    assert "dataset=bundled or dataset=local" in str(error.value)
    assert not (clone / "datasets" / "fineweb-edu" / "corpus").exists()  # no half-built output left behind
