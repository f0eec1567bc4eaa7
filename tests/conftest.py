"""Shared pytest fixtures. Keep this small and generic: several packages' tests use it."""
from __future__ import annotations

import atexit
import json
import lzma
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests with a fixed seed, so a red CI is reproducible; locally they explore freely.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Before anything imports Prefect: a private Prefect home and result store for the whole session, so cached
# task results never leak between test runs or into the user's ~/.prefect, and no telemetry is attempted.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="autoresearch-tests-prefect-"))
# Removed when the process that made it exits (registered before Prefect's own exit hooks, so it runs after them);
# a forked child, as mutmut makes one per mutant, shares it and leaves it to its parent.
atexit.register(lambda owner=os.getpid(): os.getpid() == owner and shutil.rmtree(_PREFECT_HOME, ignore_errors=True))
os.environ.update({
    "PREFECT_HOME": str(_PREFECT_HOME),
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_PREFECT_HOME / "storage"),
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
})
# pytest-xdist's workers (`make test` runs two) share the cores: each worker's trainings get an equal share, since
# two OpenMP teams each as wide as the machine stall each other whenever one of their threads waits for a core.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("ANTHROPIC_API_KEY", None)  # tests that need a key set their own sentinel
TINY_DOCUMENTS_PER_FILE = 80  # ~450 KB of text: enough to train on, quick to build


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The shuffle's seed at the end, where a failure is read (pytest -q hides pytest-randomly's header line)."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"test order: pytest-randomly, repeat it with --randomly-seed={seed}")


@pytest.fixture(autouse=True)
def _environment_and_sigterm_as_the_session_had_them():
    """Each test starts from the session's environment and SIGTERM handler, whichever tests ran before it. Product
    code called in-process changes both for good: cli.main.main sets Prefect's defaults with os.environ.setdefault,
    and `run` and `finalize` install a SIGTERM handler. In a shuffled order a test would otherwise see them or not
    depending on the seed. (monkeypatch undoes its own changes first: its teardown runs before this one's.)"""
    environ = dict(os.environ)
    sigterm = signal.getsignal(signal.SIGTERM)
    yield
    for name in set(os.environ) - set(environ):
        del os.environ[name]
    for name, value in environ.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    if sigterm is not None and signal.getsignal(signal.SIGTERM) is not sigterm:
        signal.signal(signal.SIGTERM, sigterm)


def pytest_sessionfinish(session) -> None:
    """Stop Prefect's temporary servers while pytest's output streams are still open. Left to Prefect's own
    atexit hook, the stop logs to a stream pytest has closed and every run ends in a 'Logging error' traceback."""
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        return  # no test imported Prefect's server: nothing was started
    # Run logs go to the server at INFO (prefect_ops/prefect_env.py): send what is queued while it still listens, or
    # Prefect's exit hook tries after the stop and prints 'Error logging to API'.
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    for server in list(server_module.SubprocessASGIServer._instances.values()):
        server.stop()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    """A small real dataset built with the real stage code (not DVC) in a few seconds, once per session.

    Text: the first documents of each bundled corpus file (KJV chapters and Jargon File entries);
    vocab_size 512; shards of at most 16,384 tokens, so there are several training shards.
    Returns a dict:
      name           "tiny"
      root           project-like root folder (holds datasets/tiny/)
      dir            datasets/tiny: corpus/, tokenizer/, shards/ as in docs/INTERFACES.md
      shard_dir      dir/"shards" (manifest.json, train_*.bin, val_*.bin)
      tokenizer_dir  dir/"tokenizer" (tokenizer.json, token_bytes.npy, meta.json)
      manifest       the shard manifest (dict), as data.shards.verify_shards returns it
      spec           the dataset spec used (dict, like conf/dataset/NAME.yaml)
    Treat it as read-only: it is shared by every test in the session (copy it to modify it).
    """
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset"), "tiny")


@pytest.fixture(scope="session")
def tiny_bundled_with_test_split(tmp_path_factory) -> dict:
    """The tiny dataset under the name `bundled`, with a held-out test split (test_fraction 0.1): what a run with
    `paths.data_dir=<root>/datasets` trains on, as a user's own copy of the data would be."""
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny_bundled"), "bundled", test_fraction=0.1)


def build_tiny_dataset(root: Path, name: str, test_fraction: float = 0.0) -> dict:
    from data import layout
    from data.shards import verify_shards
    from data.stages import run_corpus, run_shards, run_tokenizer

    files = []
    for source in ("kjv", "jargon"):
        with lzma.open(PROJECT_ROOT / "data" / "bundled" / f"{source}.jsonl.xz", "rt", encoding="utf-8") as handle:
            lines = [line for _, line in zip(range(TINY_DOCUMENTS_PER_FILE), handle)]
        path = root / f"{source}.jsonl.xz"
        path.write_bytes(lzma.compress("".join(lines).encode("utf-8")))
        files.append(str(path))
    spec = {
        "name": name, "source": "bundled", "files": files, "val_fraction": 0.1, "test_fraction": test_fraction,
        "vocab_size": 512, "shard_tokens": 16384, "tokenizer_train_chars": None,
    }
    run_corpus(name, root, spec=spec)
    run_tokenizer(name, root, spec=spec)
    run_shards(name, root, spec=spec)
    shard_dir, tokenizer_dir = layout.shard_dir(name, root), layout.tokenizer_dir(name, root)
    return {
        "name": name,
        "root": root,
        "dir": layout.dataset_dir(name, root),
        "shard_dir": shard_dir,
        "tokenizer_dir": tokenizer_dir,
        "manifest": verify_shards(shard_dir, tokenizer_dir),
        "spec": json.loads(json.dumps(spec)),
    }
