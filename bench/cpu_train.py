"""CPU preset training speed: tokens/s and time to first step, through the real training process.

    python bench/cpu_train.py [STEPS]

Builds an experiment folder with the cpu preset on the bundled dataset (run `autoresearch prepare` first),
starts `python -m training.entry`, and times the first progress line from the process start.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.compose import compose, resolve_path  # noqa: E402
from tasks.experiment import training_config, write_training_config  # noqa: E402


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    cfg = compose(["preset=cpu", "proposer=local", "budget.kind=steps", f"budget.steps={steps}"], auto=False)
    base = resolve_path(cfg["paths"]["data_dir"]) / cfg["dataset"]["name"]
    data = {"shard_dir": str(base / "shards"), "tokenizer_dir": str(base / "tokenizer"),
            "data_version": json.loads((base / "shards" / "manifest.json").read_text())["data_version"]}
    exp_dir = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    write_training_config(exp_dir, training_config(cfg, cfg["hparams"], cfg["hparams"]["seed"], data))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "training.entry", str(exp_dir)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first_step = None
    for line in proc.stdout:
        if first_step is None and line.startswith("step     1 |"):
            first_step = time.perf_counter() - started
    proc.wait()
    total = time.perf_counter() - started
    metrics = json.loads((exp_dir / "metrics.json").read_text())
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; torch threads default")
    print("| quantity | value |\n|---|---:|")
    print(f"| parameters | {metrics['num_params'] / 1e6:.2f} M |")
    print(f"| tokens per step | {metrics['tokens'] // metrics['steps']} |")
    print(f"| time to first step (process start -> step 1 done) | {first_step:.2f} s |")
    print(f"| warm-up (first forward/backward, not charged) | {metrics['warmup_seconds']:.2f} s |")
    print(f"| training tokens/s ({metrics['steps']} steps) | {metrics['tokens_per_second']:,.0f} |")
    print(f"| seconds per step | {metrics['training_seconds'] / metrics['steps']:.3f} |")
    print(f"| whole process | {total:.2f} s |")


if __name__ == "__main__":
    main()
