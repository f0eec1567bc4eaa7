"""What the work pool costs: scheduling overhead per experiment (goal <= 3 s; the local executor's is 0.46 s in
bench/orchestration.py), and the time from a device being freed to the next training starting on it (goal
<= 5 s). Runs README's several-hosts recipe on this machine: scripts/head_node.sh (Prefect on PostgreSQL), two
process workers, each pinned to one core (taskset, OMP_NUM_THREADS=1), the research flow on a tiny model.

1. research.parallel=1, one tag: the baselines (not timed); the same command with nothing left to do (T0);
   N more experiments (T1). Training and evaluation are timed where they ran, on the workers (the device
   records, runs/<tag>/exp/*/device.jsonl), so
       overhead per experiment = (T1 - T0 - time holding a device) / N
   It holds the pool launch, the worker's poll, the flow-run process start on the worker, the research flow's
   poll, proposals and decisions. Needs PostgreSQL (apt-get install postgresql).
2. research.parallel=2, rounds of two: for every training but the first, the time since the last device
   was freed (the pipeline's latency), and since its own device was freed (that adds waiting for the other
   member of the round, which a round does by design).

    python bench/pool_overhead.py [N] [--worker warm|prefect]

--worker prefect runs Prefect's own process worker (`prefect worker start`: a new interpreter per flow run)
instead of README's `autoresearch worker` (each flow run forked from a warm process), for the comparison.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.operate_helpers import stop  # noqa: E402
from tests.pool_helpers import Head, postgres_missing, research_command, start_worker  # noqa: E402

# A short training: the overhead, not the training, is measured. decide.rule=single: one training per experiment
# (the sequential rule's paired seeds would add pool runs one after another, each with the same cost).
EXTRA = ["budget.steps=2", "decide.rule=single"]


def run(head: Head, runs: Path, tag: str, experiments: int, *extra: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(research_command(runs, tag, experiments, *EXTRA, *extra), env=head.client_env(),
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise SystemExit(f"research run {tag} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def device_uses(run_dir: Path, first_exp: int = 0) -> list[dict]:
    """Every device.jsonl entry of experiments >= first_exp (paired seeds' folders included)."""
    uses = []
    for record in (run_dir / "exp").rglob("device.jsonl"):
        exp = int(record.relative_to(run_dir / "exp").parts[0])
        if exp >= first_exp:
            uses += [{**json.loads(line), "exp": exp} for line in record.read_text().splitlines()]
    return sorted(uses, key=lambda use: use["started_at"])


def idle_before_trainings(uses: list[dict]) -> tuple[list[float], list[float]]:
    """(since any device was freed, since its own device was freed) before each training but the first."""
    since_any, since_own = [], []
    for use in uses:
        if use["phase"] != "train":
            continue
        before = [u for u in uses if u["finished_at"] <= use["started_at"]]
        if not before:
            continue
        since_any.append(use["started_at"] - max(u["finished_at"] for u in before))
        own = [u for u in before if u["slot"] == use["slot"]]
        if own:
            since_own.append(use["started_at"] - max(u["finished_at"] for u in own))
    return since_any, since_own


def stages(run_dir: Path) -> dict[str, list[float]]:
    """Per pool run, from the server's timestamps and the device records: where the time between trainings went."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = [run for run in client.read_flow_runs(limit=200)  # the timed run's experiments (2 on)
                if str(run.parameters.get("exp_dir", "")).startswith(str(run_dir) + "/")
                and int(run.parameters.get("exp", 0)) >= 2]
    by_folder = {}
    for record in (run_dir / "exp").rglob("device.jsonl"):
        by_folder[str(record.parent)] = [json.loads(line) for line in record.read_text().splitlines()]
    runs.sort(key=lambda run: run.created)
    found: dict[str, list[float]] = {"launch -> a worker's process runs the flow": [],
                                     "flow start -> training process starts (engine, task, device slot)": [],
                                     "evaluation done -> pool run final on the server": [],
                                     "pool run final -> next pool run launched (research flow)": []}
    for before, run in zip([None, *runs], runs):
        records = by_folder.get(run.parameters["exp_dir"], [])
        train = next((r for r in records if r["phase"] == "train"), None)
        evaluate = next((r for r in records if r["phase"] == "evaluate"), None)
        if run.start_time and train:
            found["launch -> a worker's process runs the flow"].append((run.start_time - run.created).total_seconds())
            found["flow start -> training process starts (engine, task, device slot)"].append(
                train["started_at"] - run.start_time.timestamp())
        if run.end_time and evaluate:
            found["evaluation done -> pool run final on the server"].append(
                run.end_time.timestamp() - evaluate["finished_at"])
        if before is not None and before.end_time:
            found["pool run final -> next pool run launched (research flow)"].append(
                (run.created - before.end_time).total_seconds())
    return found


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="work pool overhead per experiment")
    parser.add_argument("n", type=int, nargs="?", default=6, help="experiments timed per part (default 6)")
    parser.add_argument("--worker", choices=("warm", "prefect"), default="warm")
    args = parser.parse_args()
    n = args.n
    reason = postgres_missing()
    if reason:
        raise SystemExit(reason)
    runs = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    head = Head()
    workers = []
    try:
        print(f"head node (PostgreSQL + Prefect server) ready in {head.start():.1f} s", file=sys.stderr)
        workers = [start_worker(head, device, f"bench-dev{device}", args.worker) for device in (0, 1)]
        print(f"workers: {args.worker}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
        # 1. overhead per experiment, one at a time
        seq = ("research.parallel=1",)
        run(head, runs, "seq", 2, *seq)
        fixed = run(head, runs, "seq", 2, *seq)
        total = run(head, runs, "seq", 2 + n, *seq)
        held = sum(use["finished_at"] - use["started_at"] for use in device_uses(runs / "seq", first_exp=2))
        trainings = sum(use["phase"] == "train" for use in device_uses(runs / "seq", first_exp=2))
        overhead = (total - fixed - held) / n
        print("| quantity | seconds |\n|---|---:|")
        print(f"| research run with nothing to do (fixed cost, T0) | {fixed:.2f} |")
        print(f"| research run with {n} experiments through the pool (T1; {trainings} trainings) | {total:.2f} |")
        print(f"| holding a device on the workers (training + evaluation processes) | {held:.2f} |")
        print(f"| **scheduling overhead per experiment** (goal <= 3 s) | **{overhead:.2f}** |")
        print(f"| per pool run ({trainings} trainings, paired seeds included) | {(total - fixed - held) / trainings:.2f} |")
        print("\n| stage, research.parallel=1 (median of the pool runs) | seconds |\n|---|---:|")
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: head.api}):
            for stage, values in stages(runs / "seq").items():
                print(f"| {stage} | {statistics.median(values):.2f} |" if values else f"| {stage} | - |")
        # 2. device freed -> next training, rounds of two
        run(head, runs, "par", 2 + n)
        since_any, since_own = idle_before_trainings(device_uses(runs / "par"))
        print("\n| from a device freed to the next training | median s | max s | trainings |\n|---|---:|---:|---:|")
        print(f"| **since the last device was freed** (goal <= 5 s) | **{statistics.median(since_any):.2f}** | "
              f"{max(since_any):.2f} | {len(since_any)} |")
        print(f"| since its own device was freed (waits for the round's other member) | "
              f"{statistics.median(since_own):.2f} | {max(since_own):.2f} | {len(since_own)} |")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    finally:
        for worker in workers:
            stop(worker)
        head.close()


if __name__ == "__main__":
    main()
