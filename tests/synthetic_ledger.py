"""A long run's ledger without training anything: research.decide judges every proposal, as the flow does, on
val_bpb drawn from bench/decide_sim.py's noise model (seed offsets shared by every config), so the paired
columns, keeps and verdicts are the rule's own. Crashes and skips are sprinkled in; time, energy and LLM usage
are those of a 5-minute GPU experiment. For the plot and report tests, and for looking at the plot by eye.
"""
from __future__ import annotations

import random

from bench.decide_sim import BASE_SEED, REGIMES, World, draw_gain, rule_settings
from research.decide import CONTINUE, decision_fields, first_seed, judge_baseline, judge_candidate

KEYS = ("optim.matrix_lr", "optim.embedding_lr", "optim.warmup_frac", "optim.weight_decay", "model.depth",
        "batch.total_batch_tokens", "optim.warmdown_frac", "model.window_pattern")
MIX = ((0.5, -1.0), (0.35, 0.0), (0.15, 2.0))  # most proposals do not help; a few gain two seed sds


def _costs(rng: random.Random) -> dict:
    return {"train_seconds": 300.0, "total_seconds": 300.0 + rng.uniform(30, 60), "energy_kwh": rng.uniform(0.05, 0.06),
            "llm_input_tokens": 6000, "llm_output_tokens": 400, "llm_cost_usd": 0.024}


def synthetic_ledger(experiments: int = 100, seed: int = 7, regime: str = "gpu-sessions") -> list[dict]:
    rng = random.Random(seed)
    model = REGIMES[regime]
    world, settings, rows = World(model, rng), rule_settings("sequential"), []
    for b in range(int(settings["baseline_repeats"])):
        value = world.measure(0, BASE_SEED + b)
        decision = judge_baseline(rows, BASE_SEED + b, value)
        rows.append({"exp": b, "status": "baseline", "seed": BASE_SEED + b, "description": f"baseline (seed {BASE_SEED + b})",
                     **decision_fields(decision, {BASE_SEED + b: value}, {}), **_costs(rng)})
    best_config = 0
    for exp in range(len(rows), experiments):
        key = rng.choice(KEYS)
        change = {"change": f"{key}={rng.choice([0.02, 0.03, 0.05, 0.08, 10, 12, 0.4])}", "key": key}
        pick = rng.random()
        if pick < 0.03:
            rows.append({"exp": exp, "status": "skip", **change, "error": "no valid change after 3 asks"})
            continue
        seed = first_seed(rows, BASE_SEED)
        if pick < 0.08:
            rows.append({"exp": exp, "status": "crash", "seed": seed, **change, **_costs(rng),
                         "error": "training failed: out of memory"})
            continue
        world.means[exp] = world.means[best_config] - draw_gain(MIX, rng) * model.seed_sd
        candidate, incumbent_new = {seed: world.measure(exp, seed)}, {}
        while True:
            decision = judge_candidate(rows, settings, candidate, incumbent_new, BASE_SEED)
            if decision.status != CONTINUE:
                break
            if decision.incumbent_runs_next:
                incumbent_new[decision.next_seed] = world.measure(best_config, decision.next_seed)
            candidate.setdefault(decision.next_seed, world.measure(exp, decision.next_seed))
        rows.append({"exp": exp, "seed": seed, **change, "description": f"try {change['change']}",
                     **decision_fields(decision, candidate, incumbent_new), **_costs(rng)})
        if decision.keep:
            best_config = exp
    return rows
