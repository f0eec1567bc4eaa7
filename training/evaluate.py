"""`python -m training.evaluate EXP_DIR`: val_bpb of EXP_DIR's checkpoint on the pinned validation shard.

A fresh process, so nothing from training (compiled graphs, optimizer state, a proposal's side effects)
can reach the metric. It scores exactly `train.eval_tokens` target tokens whatever the batch size, and
writes EXP_DIR/eval.json atomically. The port of the backend's framework (training.entry.port_for) supplies
each token's loss; the sums, the bytes and the metric (data.metric) are `score_validation`'s, the same for all.
"""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from common.atomic import DiskFull, atomic_write_json, is_disk_full
from data.loader import validation_batches
from data.metric import accumulate, bits_per_byte, load_token_bytes
from training.entry import die_with_parent, exp_dir_argument, port_for, report_disk_full
from training.faults import Fault
from training.run_config import ExperimentDir, load_run_config, shard_dir, tokenizer_dir

# The progress lines are what the orchestrator's silence watchdog listens to: an evaluation of a big model may
# take minutes, and it is only killed as hung when it stops printing.
PROGRESS_EVERY_SECONDS = 5.0


def score_validation(cfg: dict, token_losses: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict:
    """`token_losses(inputs, targets)` returns each target's loss in nats as float64; the rest is the same
    for every backend: exactly `train.eval_tokens` targets of the validation shard, weighted by their bytes."""
    token_bytes = load_token_bytes(tokenizer_dir(cfg))
    train_cfg = cfg["train"]
    wanted = int(train_cfg["eval_tokens"])
    # "test" only in `autoresearch finalize` (flows/finalize.py): the held-out split no decision reads.
    split = train_cfg.get("eval_split") or "val"
    total_nats, total_bytes, scored = 0.0, 0, 0
    print(f"eval: {wanted:,} tokens of the {'validation' if split == 'val' else split} shard", flush=True)
    started = last_print = time.monotonic()
    for inputs, targets in validation_batches(shard_dir(cfg), int(train_cfg["eval_batch_size"]),
                                              int(train_cfg["seq_len"]), wanted, split):
        nats, nbytes = accumulate(token_losses(inputs, targets), targets, token_bytes)
        total_nats += nats
        total_bytes += nbytes
        scored += int((targets >= 0).sum())
        now = time.monotonic()
        if now - last_print >= PROGRESS_EVERY_SECONDS:
            print(f"eval {scored:>12,} / {wanted:,} tokens | {now - started:6.1f}s", flush=True)
            last_print = now
    return {"status": "ok", "val_bpb": bits_per_byte(total_nats, total_bytes), "eval_tokens": scored,
            "eval_bytes": int(total_bytes), "eval_split": split}


def evaluate(exp_dir: Path) -> dict:
    cfg = load_run_config(exp_dir)
    fault = Fault.from_config(cfg.get("fault"))
    if fault:
        fault.trigger_evaluation_fault()
    port, adapter = port_for(cfg)
    return port.evaluate(cfg, exp_dir, adapter)


def main(argv: list[str] | None = None) -> int:
    exp_dir = exp_dir_argument(argv, "training.evaluate")
    if exp_dir is None:
        return 2
    eval_path = ExperimentDir(exp_dir).evaluation
    die_with_parent()
    started = time.time()
    try:
        try:
            result = evaluate(exp_dir)
        except Exception as exc:  # noqa: BLE001 - recorded as the experiment's crash reason
            if is_disk_full(exc):  # not the block's fault: the orchestrator stops the run (training/entry.py)
                return report_disk_full(exc, exp_dir)
            traceback.print_exc()
            reason = str(exc) if isinstance(exc, (FileNotFoundError, ValueError)) else f"{type(exc).__name__}: {exc}"
            atomic_write_json(eval_path, {"status": "failed", "reason": f"evaluation failed: {reason}"})
            print(f"evaluation failed: {reason}", file=sys.stderr)
            return 1
        result["eval_seconds"] = time.time() - started
        atomic_write_json(eval_path, result)
    except DiskFull as exc:
        return report_disk_full(exc, exp_dir)
    print(f"val_bpb: {result['val_bpb']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
