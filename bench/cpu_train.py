"""CPU preset training speed through the real training process: tokens/s, model FLOP/s against the machine's
own fp32 matmul rate, and the time to the first step.

    python bench/cpu_train.py [--steps 30 | --seconds 60] [--compile auto|true|false] [--threads N]

Builds an experiment folder with the cpu preset on the bundled dataset (prepared first, as `autoresearch run` does),
starts `python -m training.entry`, and times the first progress line from the process start. The fp32 matmul
rate (512 x 512 x 512, the thread count of the training) is measured right before and right after the
training, in this process, so the ratio "model FLOP/s / fp32 matmul FLOP/s" compares two figures taken
under the same load. On a machine that other work shares, `--threads 1` under `taskset -c 1` gives
repeatable figures where two threads do not (an OpenMP team stalls whenever one of its threads waits for a
core). The load average is printed with the table.
"""
from __future__ import annotations

import argparse
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

import torch  # noqa: E402

from data.prepare import prepare_data  # noqa: E402
from flows.compose import compose, resolve_path  # noqa: E402
from hardware import get_adapter  # noqa: E402
from training.run_config import ExperimentDir, training_config, write_training_config  # noqa: E402


def fp32_matmul_flops(threads: int, n: int = 512, repeats: int = 40) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * n**3 / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None)
    budget.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    budget_overrides = (["budget.kind=time", f"budget.seconds={args.seconds:g}"] if args.seconds
                        else ["budget.kind=steps", f"budget.steps={args.steps or 30}"])
    cfg = compose(["preset=cpu", "proposer=local", f"train.compile={args.compile}", *budget_overrides], auto=False)
    data = prepare_data(cfg["dataset"]["name"], resolve_path(cfg["paths"]["data_dir"]))  # as `autoresearch run` does
    exp_dir = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    write_training_config(exp_dir, training_config(cfg, cfg["hparams"], cfg["hparams"]["seed"], data))
    load_before = os.getloadavg()[0]
    matmul_before = fp32_matmul_flops(args.threads)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "training.entry", str(exp_dir)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    first_step = None
    for line in proc.stdout:
        if first_step is None and line.startswith("step     1 |"):
            first_step = time.perf_counter() - started
    proc.wait()
    total = time.perf_counter() - started
    metrics = json.loads(ExperimentDir(exp_dir).metrics.read_text())
    if metrics.get("status") != "ok":
        raise SystemExit(f"training failed: {metrics.get('reason')}")
    subprocess.run([sys.executable, "-m", "training.evaluate", str(exp_dir)], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    evaluation = json.loads(ExperimentDir(exp_dir).evaluation.read_text())
    matmul = (matmul_before + fp32_matmul_flops(args.threads)) / 2
    model_flops = metrics["tokens_per_second"] * metrics["flops_per_token"]
    adapter = get_adapter("cpu")
    print(f"machine: {os.cpu_count()} cores, {adapter.device_name()}; {args.threads} torch thread(s); "
          f"autocast {str(adapter.autocast_dtype).removeprefix('torch.')}; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; python {platform.python_version()}, torch {torch.__version__}")
    print("| quantity | value |\n|---|---:|")
    print(f"| parameters | {metrics['num_params'] / 1e6:.2f} M |")
    print(f"| tokens per step | {metrics['tokens'] // metrics['steps']:,} |")
    print(f"| compiled | {metrics['compiled']} |")
    print(f"| time to first step (process start -> step 1 done) | {first_step:.2f} s |")
    print(f"| warm-up (first forward/backward, compile included, not charged) | {metrics['warmup_seconds']:.2f} s |")
    print(f"| training tokens/s ({metrics['steps']} steps) | {metrics['tokens_per_second']:,.0f} |")
    print(f"| seconds per step | {metrics['training_seconds'] / metrics['steps']:.3f} |")
    print(f"| model FLOP/s (causal attention count) | {model_flops / 1e9:.1f} G |")
    print(f"| fp32 matmul FLOP/s, same threads, same load | {matmul / 1e9:.1f} G |")
    print(f"| model FLOP/s / fp32 matmul FLOP/s | {model_flops / matmul:.2f} |")
    print(f"| whole training process | {total:.2f} s |")
    print(f"| evaluation ({evaluation['eval_tokens']:,} tokens, eager, own process) | {evaluation['eval_seconds']:.2f} s, "
          f"{evaluation['eval_tokens'] / evaluation['eval_seconds']:,.0f} tokens/s |")


if __name__ == "__main__":
    main()
