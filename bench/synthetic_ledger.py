"""A long run's ledger without training anything: research.judging.verdict judges every proposal, as the flow does, on
val_bpb drawn from bench/decide_sim.py's noise model (seed offsets shared by every config), so the paired
columns, keeps and verdicts are the rule's own. Crashes and skips are sprinkled in; time, energy and LLM usage
are those of a 5-minute GPU experiment. For the plot and report tests, and for looking at the plot by eye:

    .venv/bin/python bench/synthetic_ledger.py docs/progress.png   # README's example plot
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decide_sim import BASE_SEED, REGIMES, World, draw_gain, judge_in_world, rule_settings  # noqa: E402
from research.judging.verdict import Trained, decision_fields, first_seed, judge_baseline  # noqa: E402
from research.reporting.run_costs import trainings  # noqa: E402

VALUES = {"optim.matrix_lr": (0.02, 0.03, 0.05, 0.06), "optim.embedding_lr": (0.3, 0.4, 0.8),
          "optim.warmdown_frac": (0.3, 0.5, 0.7), "optim.weight_decay": (0.0, 0.1, 0.3), "model.depth": (6, 10, 12),
          "batch.total_batch_tokens": (262144, 1048576), "model.window_pattern": ("SSSL", "SL", "L")}
MIX = ((0.5, -1.0), (0.35, 0.0), (0.15, 2.0))  # most proposals do not help; a few gain two seed sds


def _costs(rng: random.Random) -> dict:
    return {"train_seconds": 300.0, "total_seconds": 300.0 + rng.uniform(30, 60), "energy_kwh": rng.uniform(0.05, 0.06),
            "llm_input_tokens": 6000, "llm_output_tokens": 400, "llm_cost_usd": 0.024}


def synthetic_ledger(experiments: int = 100, seed: int = 7, regime: str = "gpu-sessions") -> list[dict]:
    rng = random.Random(seed)
    model = REGIMES[regime]
    world, settings, rows = World(model, rng), rule_settings("sequential"), []
    for b in range(int(settings["baseline_repeats"])):
        value, _ = world.measure(0, BASE_SEED + b)
        decision = judge_baseline(rows, BASE_SEED + b, value)
        rows.append({"exp": b, "status": "baseline", "seed": BASE_SEED + b, "description": f"baseline (seed {BASE_SEED + b})",
                     **decision_fields(decision, Trained({BASE_SEED + b: value})), **_costs(rng)})
    best_config = 0
    for exp in range(len(rows), experiments):
        key = rng.choice(sorted(VALUES))
        change = {"change": f"{key}={rng.choice(VALUES[key])}", "key": key}
        pick = rng.random()
        if pick < 0.03:
            rows.append({"exp": exp, "status": "skip", **change, "error": "no valid change after 3 asks"})
            continue
        seed = first_seed(rows, BASE_SEED, int(settings.get("control_every") or 0))
        if pick < 0.08:
            rows.append({"exp": exp, "status": "crash", "seed": seed, **change, **_costs(rng),
                         "error": "training failed: out of memory"})
            continue
        world.add_config(exp, best_config, draw_gain(MIX, rng) * model.seed_sd)
        decision, trained, _ = judge_in_world(world, rows, settings, exp, best_config, seed)
        row = {"exp": exp, "seed": seed, **change, "description": f"try {change['change']}",
               **decision_fields(decision, trained), **_costs(rng)}
        row["total_seconds"] *= trainings(row)  # the row's wall time covers every paired training it ran
        rows.append(row)
        if decision.keep:
            best_config = exp
    return rows


def main() -> None:
    from research.judging.finalize import Paired
    from research.reporting.progress_plot import plot_progress
    from research.records.run_settings import decide_settings

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "progress.png")
    rows = synthetic_ledger()
    # An illustrative finalize result, a little under the kept gain as re-measurement usually is.
    verified = Paired(0.015, 0.0008, 4)
    png = plot_progress(rows, "autoresearch: a synthetic 100-experiment night", decide_settings(""), verified)
    # 128 colours are plenty for line art and keep the README's copy small (117 kB -> about a third).
    from io import BytesIO

    from PIL import Image

    Image.open(BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
