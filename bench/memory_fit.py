"""Predicted against measured peak memory on this CPU, for 20 blocks drawn from conf/space.yaml.

    python bench/memory_fit.py [--blocks 20] [--compile false|true] [--seed 0] [--out table.md]

Each block is trained by the real training process (`python -m training.entry`, cpu preset, bundled dataset,
a 2-step budget) and its metrics.json's `peak_tensor_gb` (training/tensor_peak.py: the CPU allocator's own
running total over the first two optimizer steps, plus the tensors alive before them) is set against
training.fit's prediction, made in this process before the training starts. The blocks: the cpu preset's own,
the largest of every size key the machine trains in a minute (depth 32, aspect_ratio 256, mlp_ratio 8,
head_dim 256, device_batch_size 128, swiglu) and random draws of the shape keys, the device batch and the
accumulation. `--compile true` measures compiled trainings (the cpu preset's FLOP budget compiles; 25-90 s of
compile each). Prints a markdown table and the machine line; writes it to --out too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.compose import compose, resolve_path  # noqa: E402
from hardware import get_adapter  # noqa: E402
from models.hparams import BlockError, check_block  # noqa: E402
from research.proposing.space import load_space  # noqa: E402
from training.fit import device_facts, predict, traced_model_bytes, traced_optimizer_bytes  # noqa: E402
from training.run_config import ExperimentDir, training_config, write_training_config  # noqa: E402

SEQ_LEN = 256
SHAPE_KEYS = ("model.depth", "model.aspect_ratio", "model.head_dim", "model.kv_head_ratio", "model.mlp_ratio",
              "model.activation", "model.value_residual", "model.window_pattern", "model.ve_gate_channels")
# The largest value of each size key of the space, each on a block this machine trains in about a minute (the
# largest blocks of the space, 32 layers of width 8,192, hold ~26 B parameters: no CPU here holds them).
LARGEST = [
    {"model.depth": 32, "model.aspect_ratio": 8, "batch.device_batch_size": 4, "batch.total_batch_tokens": 2048},
    {"model.depth": 2, "model.aspect_ratio": 256, "model.head_dim": 256},
    {"model.mlp_ratio": 8},
    {"model.head_dim": 256, "model.aspect_ratio": 64},
    {"batch.device_batch_size": 128, "batch.total_batch_tokens": 32768},
    {"model.activation": "swiglu", "model.mlp_ratio": 8, "model.depth": 8},
    {"model.kv_head_ratio": 8, "model.depth": 8, "model.aspect_ratio": 32, "model.head_dim": 32},
]
# Random draws stay under this predicted peak (and so within a minute of training on 2 cores).
MAX_RANDOM_GB = 1.5


def set_key(hparams: dict, key: str, value) -> None:
    group, name = key.split(".")
    hparams[group][name] = value


def random_block(base: dict, space, rng: random.Random, small_enough) -> dict:
    """A block with the shape keys drawn from the space (sizes kept to what 2 cores train in about a minute)."""
    while True:
        hparams = json.loads(json.dumps(base))
        for key in SHAPE_KEYS:
            param = space[key]
            if key == "model.depth":
                value = rng.randint(1, 12)
            elif key == "model.aspect_ratio":
                value = rng.choice([8, 16, 32, 48, 64])
            elif param.type == "choice":
                value = rng.choice(list(param.choices))
            elif param.type == "bool":
                value = rng.random() < 0.5
            elif param.type == "str-pattern":
                value = "".join(rng.choice("SL") for _ in range(rng.randint(1, 4)))
            else:
                value = rng.randint(int(param.min), int(param.max))
            set_key(hparams, key, value)
        device_batch = rng.choice([1, 2, 4, 8, 16, 32, 64])
        set_key(hparams, "batch.device_batch_size", device_batch)
        set_key(hparams, "batch.total_batch_tokens", device_batch * SEQ_LEN * rng.choice([1, 2]))
        try:
            check_block(hparams, SEQ_LEN)
        except BlockError:
            continue
        if small_enough(hparams):
            return hparams


def measure(cfg: dict, hparams: dict, data: dict, workdir: Path) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="fit-", dir=workdir))
    write_training_config(directory, training_config(cfg, hparams, 42, data))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "training.entry", str(directory)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = json.loads(ExperimentDir(directory).metrics.read_text())
    if metrics.get("status") != "ok":
        raise SystemExit(f"training failed: {metrics.get('reason')}\n{proc.stdout[-2000:]}")
    return {**metrics, "wall": time.perf_counter() - started}


def describe(hparams: dict, base: dict) -> str:
    changed = []
    for group in ("model", "batch"):
        for name, value in hparams[group].items():
            if base[group].get(name) != value:
                changed.append(f"{name}={value}")
    return " ".join(changed) or "cpu preset block"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--compile", default="false", choices=["false", "true"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    cfg = compose(["preset=cpu", "proposer=local", "budget.kind=steps", "budget.steps=2", f"train.seq_len={SEQ_LEN}",
                   f"train.compile={args.compile}", "train.speed_probe_seconds=5"], auto=False)
    base_dir = resolve_path(cfg["paths"]["data_dir"]) / cfg["dataset"]["name"]
    manifest = json.loads((base_dir / "shards" / "manifest.json").read_text())
    data = {"shard_dir": str(base_dir / "shards"), "tokenizer_dir": str(base_dir / "tokenizer"),
            "data_version": manifest["data_version"]}
    space = load_space(ROOT / "conf" / "space.yaml")
    base = cfg["hparams"]
    blocks = [json.loads(json.dumps(base))]
    for extreme in LARGEST:
        block = json.loads(json.dumps(base))
        for key, value in extreme.items():
            set_key(block, key, value)
        blocks.append(block)
    adapter = get_adapter("cpu")
    facts = device_facts(adapter, args.compile, "steps", SEQ_LEN)
    vocab = int(manifest["vocab_size"])
    rng = random.Random(args.seed)
    while len(blocks) < args.blocks:
        blocks.append(random_block(base, space, rng, lambda block: predict(
            block, SEQ_LEN, vocab, cfg["budget"], facts).peak_gb <= MAX_RANDOM_GB))
    traced_model_bytes.cache_clear()  # the table times predictions made from scratch
    traced_optimizer_bytes.cache_clear()
    lines = ["| # | block (changes from the cpu preset) | params M | micro-batches | predicted GB | measured GB | "
             "error | predict s | train s |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    errors = []
    with tempfile.TemporaryDirectory(prefix="memory-fit-") as workdir:
        for number, hparams in enumerate(blocks[:args.blocks], start=1):
            started = time.perf_counter()
            prediction = predict(hparams, SEQ_LEN, vocab, cfg["budget"], facts)
            predict_seconds = time.perf_counter() - started
            metrics = measure(cfg, hparams, data, Path(workdir))
            measured = metrics["peak_tensor_gb"]
            error = prediction.peak_gb / measured - 1
            errors.append(abs(error))
            line = (f"| {number} | {describe(hparams, base)} | {metrics['num_params'] / 1e6:.2f} | {prediction.accum} | "
                    f"{prediction.peak_gb:.4f} | {measured:.4f} | {100 * error:+.1f}% | {predict_seconds:.2f} | "
                    f"{metrics['wall']:.0f} |")
            lines.append(line)
            print(line, flush=True)
    within = sum(e <= 0.10 for e in errors)
    machine = (f"machine: {os.cpu_count()} cores, {adapter.device_name()}; autocast {facts.autocast}; compiled "
               f"{facts.compiled}, attention {facts.attention}; python {platform.python_version()}; "
               f"load average {os.getloadavg()[0]:.2f}")
    summary = (f"{within} of {len(errors)} blocks within 10%; largest error {100 * max(errors):.1f}%, "
               f"median {100 * sorted(errors)[len(errors) // 2]:.1f}%")
    print(machine)
    print(summary)
    if args.out:
        Path(args.out).write_text("\n".join([machine, "", *lines, "", summary]) + "\n")


if __name__ == "__main__":
    main()
