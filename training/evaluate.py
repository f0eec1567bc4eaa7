"""`python -m training.evaluate EXP_DIR`: val_bpb of EXP_DIR's checkpoint on the pinned validation shard.

A fresh process, so nothing from training (compiled graphs, optimizer state, a proposal's side effects)
can reach the metric. It scores exactly `train.eval_tokens` target tokens whatever the batch size, and
writes EXP_DIR/eval.json atomically. The metric arithmetic lives in data.metric, shared with MLX.
"""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from data.atomic import atomic_write_json
from training.faults import Fault
from training.lifeline import die_with_parent
from training.run_config import EVAL_FILE, load_run_config


def evaluate(exp_dir: Path) -> dict:
    cfg = load_run_config(exp_dir)
    fault = Fault.from_config(cfg.get("fault"))
    if fault:
        fault.trigger_evaluation_fault()
    from hardware import detect

    backend = detect(cfg.get("backend", "auto"))
    if backend == "mlx":
        from training.eval_mlx import evaluate_mlx

        return evaluate_mlx(cfg, exp_dir)
    from training.eval_torch import evaluate_torch

    return evaluate_torch(cfg, exp_dir, backend)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m training.evaluate EXP_DIR", file=sys.stderr)
        return 2
    exp_dir = Path(argv[0])
    die_with_parent()
    started = time.time()
    try:
        result = evaluate(exp_dir)
    except Exception as exc:  # noqa: BLE001 - recorded as the experiment's crash reason
        traceback.print_exc()
        reason = str(exc) if isinstance(exc, (FileNotFoundError, ValueError)) else f"{type(exc).__name__}: {exc}"
        atomic_write_json(exp_dir / EVAL_FILE, {"status": "failed", "reason": f"evaluation failed: {reason}"})
        print(f"evaluation failed: {reason}", file=sys.stderr)
        return 1
    result["eval_seconds"] = time.time() - started
    atomic_write_json(exp_dir / EVAL_FILE, result)
    print(f"val_bpb: {result['val_bpb']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
