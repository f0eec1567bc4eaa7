"""Data pipeline throughput: tokenizer training, encoding (corpus -> shards) and the training loader.

Builds the bundled dataset from scratch in a temporary folder with the real stage functions, timing
each stage, then times TrainLoader pinned to one CPU core (os.sched_setaffinity, so numpy and the
packer cannot use a second core). Prints a markdown table.

    python bench/data_bench.py [--dataset bundled] [--loader-seconds 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data import layout  # noqa: E402
from data.loader import TrainLoader  # noqa: E402
from data.spec import load_dataset_spec  # noqa: E402
from data.stages import run_corpus, run_shards, run_tokenizer  # noqa: E402


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def time_loader(shard_dir: Path, batch_size: int, seq_len: int, seconds: float) -> tuple[float, float]:
    loader = TrainLoader(shard_dir, batch_size, seq_len, seed=0)
    next(loader)  # warm the page cache and the buffer
    tokens, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        inputs, _ = next(loader)
        tokens += inputs.size
    elapsed = time.perf_counter() - started
    return tokens / elapsed, loader.tokens_dropped / max(loader.tokens_yielded, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="bundled")
    parser.add_argument("--loader-seconds", type=float, default=5.0)
    args = parser.parse_args()
    spec = load_dataset_spec(args.dataset, ROOT / "conf")
    if spec["source"] == "bundled":
        spec["files"] = [str(ROOT / name) for name in spec["files"]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        corpus_meta = run_corpus(args.dataset, tmp, spec=spec)
        corpus_seconds = time.perf_counter() - started
        train_mb = sum(p.stat().st_size for p in (layout.corpus_dir(args.dataset, tmp) / "train").glob("*.parquet"))
        started = time.perf_counter()
        tokenizer_meta = run_tokenizer(args.dataset, tmp, spec=spec)
        tokenizer_seconds = time.perf_counter() - started
        started = time.perf_counter()
        manifest = run_shards(args.dataset, tmp, spec=spec)
        shard_seconds = time.perf_counter() - started
        text_mb = sum(manifest["characters"].values()) / 1e6  # characters ~ bytes for this English text
        tok_mb = tokenizer_meta["training_characters"] / 1e6
        total_tokens = sum(manifest["tokens"].values())
        rows.append(("corpus stage (read + split + parquet)", f"{sum(corpus_meta['characters'].values()) / 1e6 / corpus_seconds:.1f} MB/s",
                     f"{sum(corpus_meta['characters'].values()) / 1e6:.1f} MB in {corpus_seconds:.2f} s"))
        rows.append((f"tokenizer training (BPE, vocab {spec['vocab_size']})", f"{tok_mb / tokenizer_seconds:.1f} MB/s",
                     f"{tok_mb:.1f} MB in {tokenizer_seconds:.2f} s, goal >= 3 MB/s"))
        rows.append(("encoding (encode_batch -> uint16 shards + sha256)", f"{text_mb / shard_seconds:.1f} MB/s",
                     f"{text_mb:.1f} MB -> {total_tokens:,} tokens in {shard_seconds:.2f} s ({total_tokens / shard_seconds / 1e6:.2f} M tok/s)"))
        del train_mb
        shard_dir = layout.shard_dir(args.dataset, tmp)
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core from here on
        for batch_size, seq_len in ((32, 2048), (16, 256)):
            rate, dropped = time_loader(shard_dir, batch_size, seq_len, args.loader_seconds)
            rows.append((f"TrainLoader, 1 core, batch {batch_size} x seq_len {seq_len}", f"{rate / 1e6:.1f} M tokens/s",
                         f"{dropped:.2%} of tokens dropped by cropping; goal >= 2 M tokens/s"))
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} used for the loader), {cpu_model()}, Python {platform.python_version()}")
    print(f"dataset: {args.dataset} ({text_mb:.1f} MB of text, {total_tokens:,} tokens)\n")
    print("| what | throughput | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
