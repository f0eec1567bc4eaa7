"""Judge the change, not the machine: one change judged by the product's paired rule with 0, 1 and 2 CPU-burning
processes beside the trainings, under the cpu preset's FLOP budget and under a 60 s time budget (raw, and with
the machine's speed taken out).

Per load level and budget: the default block trained on two seeds (the baselines), then the candidate (the default
block plus CHANGE) on the incumbent's seeds as research.judging.paired_runs asks, each an ordinary training process and
evaluation process of the product (python -m training.entry / training.evaluate), judged by research.judging.verdict
exactly as a run would. A time-budget level is judged twice from the same trainings: with decide.speed.adjust off
(the rule before issue 23) and on. The table says each verdict, the paired gain +- its s.e. and the figures the
decision compared, the steps and the machine's measured speed.

    .venv/bin/python bench/load_proof.py [--burners 0 1 2] [--budgets flops time] [--change KEY=VALUE]
                                          [--max-pairs 3] [--out bench/results/load_proof.md]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.compose import compose  # noqa: E402
from data.prepare import prepare_data  # noqa: E402
from research.judging.verdict import Trained, decision_fields, failure_repeats, judge_baseline  # noqa: E402
from research.judging.paired_runs import CANDIDATE, PairedRun, settle_pairs  # noqa: E402
from research.proposing.space import apply_change, load_space  # noqa: E402
from research.proposing.validation import validate  # noqa: E402
from training.run_config import ExperimentDir, training_config, write_training_config  # noqa: E402

BASE_SEED = 42
# BENCHMARKS.md "Keeps that hold up": re-measured at +0.0199 +- 0.0025 on the cpu preset, an optimizer change,
# so a FLOP budget and a time budget give it the same steps.
DEFAULT_CHANGE = "optim.unembedding_lr=0.0069512"


def burn() -> None:
    while True:
        pass


def start_burners(count: int) -> list[multiprocessing.Process]:
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(count)]
    for process in burners:
        process.start()
    return burners


def train_and_evaluate(cfg: dict, hparams: dict, seed: int, data: dict, directory: Path) -> tuple[dict, dict | None]:
    """One training and its evaluation, as separate processes of the product; (metrics, evaluation or None)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_training_config(directory, training_config(cfg, hparams, seed, data))
    files = ExperimentDir(directory)
    for module in ("training.entry", "training.evaluate"):
        with open(directory / f"{module}.log", "w") as log:
            code = subprocess.call([sys.executable, "-m", module, str(directory)], cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        if code != 0 and module == "training.entry":
            return json.loads(files.metrics.read_text()) if files.metrics.is_file() else {"status": "failed"}, None
    return json.loads(files.metrics.read_text()), json.loads(files.evaluation.read_text())


def outcome(metrics: dict, evaluation: dict | None) -> PairedRun:
    if not evaluation or evaluation.get("status") != "ok":
        return PairedRun(None, failure=(evaluation or metrics).get("reason", "failed"),
                         repeats=failure_repeats(metrics, evaluation))
    return PairedRun(float(evaluation["val_bpb"]), metrics.get("machine_speed"))


def judge_level(cfg: dict, change, data: dict, work: Path, adjust_arms: list[bool]) -> list[dict]:
    """Baselines on seeds 42 and 43, then the candidate as the paired rule asks; one result per adjust arm."""
    space = load_space(ROOT / "conf" / "space.yaml")
    candidate_hparams = apply_change(cfg["hparams"], change)
    runs: dict[tuple[str, int], tuple[dict, dict | None]] = {}

    def trained_run(role: str, seed: int) -> tuple[dict, dict | None]:
        if (role, seed) not in runs:
            hparams = candidate_hparams if role == CANDIDATE else cfg["hparams"]
            runs[(role, seed)] = train_and_evaluate(cfg, hparams, seed, data, work / f"{role}-{seed}")
        return runs[(role, seed)]

    results = []
    for adjust in adjust_arms:
        settings = {**cfg["decide"], "speed": {**cfg["decide"]["speed"], "adjust": adjust}}
        rows = []
        for exp, seed in enumerate((BASE_SEED, BASE_SEED + 1)):
            metrics, evaluation = trained_run("incumbent", seed)
            run = outcome(metrics, evaluation)
            trained = Trained({seed: run.val_bpb}, {}, {seed: run.speed} if run.speed else {})
            rows.append({"exp": exp, "seed": seed, "steps": metrics.get("steps"),
                         **decision_fields(judge_baseline(rows, seed, run.val_bpb), trained)})
        first_seed = BASE_SEED + 1
        first = outcome(*trained_run(CANDIDATE, first_seed))
        start = Trained({first_seed: first.val_bpb}, {}, {first_seed: first.speed} if first.speed else {})
        decision, trained, spent = settle_pairs(
            rows, settings, start, lambda asked: {run: outcome(*trained_run(*run)) for run in asked}, BASE_SEED,
            kind=space.kind_of(change.key))
        results.append({"adjust": adjust, "decision": decision, "trained": trained, "rows": rows,
                        "trainings": 3 + spent, "runs": dict(runs)})
    return results


def describe(result: dict, budget: str, burners: int, load: str, seconds: float) -> str:
    decision, trained, rows = result["decision"], result["trained"], result["rows"]
    steps = {key: metrics.get("steps") for key, (metrics, _) in result["runs"].items()}
    speeds = sorted(f"{metrics.get('machine_speed') or 0:.0f}" for metrics, _ in result["runs"].values())
    baselines = " / ".join(f"{row['val_bpb']:.4f}" for row in rows)
    candidate = " / ".join(f"{value:.4f}" for _, value in sorted(trained.candidate.items()))
    gain = -(decision.paired_delta or 0.0)
    se = f" +- {decision.paired_se:.4f}" if decision.paired_se else ""
    arm = budget if budget == "flops" else f"time, {'adjusted' if result['adjust'] else 'raw'}"
    return (f"| {arm} | {burners} | {load} | {baselines} | {candidate} | {gain:+.4f}{se} | "
            f"{decision.status} | {min(steps.values())}-{max(steps.values())} | {speeds[0]}-{speeds[-1]} | "
            f"{result['trainings']} | {seconds / 60:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", default=["flops", "time"], choices=["flops", "time"])
    parser.add_argument("--change", default=DEFAULT_CHANGE)
    parser.add_argument("--max-pairs", type=int, default=3, help="decide.sequential.max_pairs (bounds the cost)")
    parser.add_argument("--work", default="/tmp/load_proof")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load_proof.md"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (tests: a tiny model and budget)")
    args = parser.parse_args()
    space = load_space(ROOT / "conf" / "space.yaml")
    header = ["| budget | burners | load (1 min) | baselines 42 / 43 | candidate by seed | paired gain +- s.e. | "
              "verdict | steps | machine GFLOP/s | trainings | minutes |", "|---|---:|---|---|---|---:|---|---|---|---:|---:|"]
    lines = list(header)
    for budget in args.budgets:
        overrides = ["preset=cpu", f"decide.sequential.max_pairs={args.max_pairs}", *args.overrides]
        if budget == "time":
            overrides += ["budget.kind=time"]
        cfg = compose(overrides)
        key, _, text = args.change.partition("=")
        change = validate({"key": key, "value": yaml.safe_load(text), "description": "the change under test", "reasoning": "-"},
                          cfg["hparams"], space, seq_len=int(cfg["train"]["seq_len"]))
        data = prepare_data(cfg["dataset"]["name"], str(ROOT / cfg["paths"]["data_dir"]))
        for burners in args.burners:
            work = Path(args.work) / f"{budget}-{burners}"
            processes = start_burners(burners)
            started = time.perf_counter()
            try:
                time.sleep(2 if burners else 0)  # let the load settle before the first training
                results = judge_level(cfg, change, data, work, [False] if budget == "flops" else [False, True])
            finally:
                for process in processes:
                    process.terminate()
            load = f"{os.getloadavg()[0]:.1f}"
            for result in results:
                lines.append(describe(result, budget, burners, load, time.perf_counter() - started))
                print(lines[-1], flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    text = "\n".join([f"`{' '.join(sys.argv)}` on {cpu}, {os.cpu_count()} cores; change {args.change}", "", *lines])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
