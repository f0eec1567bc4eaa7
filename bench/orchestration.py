"""Orchestration overhead per experiment: everything but training, evaluation and LLM latency (goal <= 2 s).

Runs the research flow in-process on a tiny model (1 optimizer step), three times on one tag:
  1. the baselines (not timed),
  2. the same command again with nothing left to do: the fixed cost of a flow run (T0),
  3. N more experiments (T1).
The training and evaluation processes are timed where they are started (training.launch.run_isolated), so
  overhead per experiment = (T1 - T0 - time inside those processes) / N.
The local proposer answers in milliseconds; its time is counted as overhead (conservative).

    python bench/orchestration.py [N]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HOME = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
os.environ.update({"PREFECT_HOME": str(HOME / "prefect"), "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(HOME / "results"),
                   "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "PREFECT_LOGGING_LEVEL": "WARNING"})

import tasks.evaluate  # noqa: E402
import training.launch  # noqa: E402
import tasks.train  # noqa: E402
from flows.research import research_flow  # noqa: E402

TINY = ["preset=cpu", "proposer=local", "hparams.model.depth=1", "hparams.model.aspect_ratio=32",
        "hparams.model.head_dim=32", "hparams.batch.device_batch_size=4", "hparams.batch.total_batch_tokens=256",
        "train.seq_len=64", "train.eval_tokens=512", "train.eval_batch_size=4", "budget.kind=steps",
        "budget.steps=1", "decide.baseline_repeats=2", f"paths.runs_dir={HOME / 'runs'}", "tag=bench"]

process_seconds = 0.0
_original = training.launch.run_isolated


def timed_run_isolated(*args, **kwargs):
    global process_seconds
    result = _original(*args, **kwargs)
    process_seconds += result.seconds
    return result


tasks.train.run_isolated = tasks.evaluate.run_isolated = timed_run_isolated


def timed(max_experiments: int) -> float:
    started = time.perf_counter()
    research_flow(overrides=TINY + [f"research.max_experiments={max_experiments}"])
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    timed(2)
    fixed = timed(2)
    global process_seconds
    process_seconds = 0.0
    total = timed(2 + n)
    overhead = (total - fixed - process_seconds) / n
    print("| quantity | seconds |\n|---|---:|")
    print(f"| flow run with nothing to do (fixed cost, T0) | {fixed:.2f} |")
    print(f"| flow run with {n} experiments (T1) | {total:.2f} |")
    print(f"| inside training + evaluation processes | {process_seconds:.2f} |")
    print(f"| **orchestration overhead per experiment** | **{overhead:.2f}** |")
    print(f"| training + evaluation process per experiment (startup dominated) | {process_seconds / n:.2f} |")


if __name__ == "__main__":
    main()
