"""Build experiment folders for training tests from the real composed configuration."""
from __future__ import annotations

import os
from pathlib import Path

from flows.compose import compose
from training.run_config import training_config, write_training_config

# The skip reason of the MLX tests: `make test` installs mlx (Linux: the mlx-cpu extra), a plain pytest may not.
MLX_MISSING = "mlx is not installed: pip install -e '.[mlx-cpu]' on Linux, '.[mlx]' on a Mac (make test does it)"
# A model small enough to train in seconds on 2 cores, on the tiny dataset's vocabulary of 512.
TINY_OVERRIDES = [
    "preset=cpu", "proposer=local", "hparams.model.depth=2", "hparams.model.aspect_ratio=32", "hparams.model.head_dim=32",
    "hparams.batch.device_batch_size=8", "hparams.batch.total_batch_tokens=2048", "train.seq_len=128",
    "train.eval_tokens=4096", "train.eval_batch_size=8", "budget.kind=steps", "budget.steps=30",
]


def tiny_config(extra: list[str] | None = None) -> dict:
    return compose(TINY_OVERRIDES + list(extra or []), auto=False)


def make_experiment(tmp_path: Path, dataset: dict, extra: list[str] | None = None, fault: dict | None = None,
                    name: str = "exp") -> Path:
    cfg = tiny_config(extra)
    data = {"shard_dir": dataset["shard_dir"], "tokenizer_dir": dataset["tokenizer_dir"],
            "data_version": dataset["manifest"]["data_version"]}
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    write_training_config(directory, training_config(cfg, cfg["hparams"], cfg["hparams"]["seed"], data, fault))
    return directory


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed child stays one until its parent reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def living_processes(*words: str) -> list[int]:
    """Pids of live processes whose command line contains every one of `words`.

    Found by what they are, not by parentage: an orphan is re-parented to init and leaves the test's own tree.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(word in command for word in words) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
