"""Compare proposers on a synthetic objective: a known smooth function of a few keys, plus Gaussian noise.

Each seed runs a sequential loop of N proposals from the default block: propose, "train" (the objective + noise),
keep when the measured val_bpb beats the best by more than the keep threshold (2 sigma), else discard. The gain
of a run is the TRUE (noise-free) objective of the baseline block minus that of the final kept block. Prints a
Markdown table; the figures go into bench/results/proposer.md.

Two noise models. Default: every measurement gets independent noise (sigma 0.003), one baseline, sigma known.
`--seed-sigma S --baselines K`: the noise the flow really sees. A training seed shifts val_bpb by its own offset
(sigma S) and every run adds a little more (`--run-sigma`); K baselines run on seeds 42.. and their mean is the
best, their spread the sigma, while every experiment trains on the base seed 42, like flows/research.py.

    .venv/bin/python bench/proposer_bench.py --seeds 20 --proposals 16
    .venv/bin/python bench/proposer_bench.py --seeds 200 --seed-sigma 0.014 --run-sigma 0.004 --baselines 4
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from research.errors import InvalidProposal  # noqa: E402
from research.proposing.proposers import ProposalContext, make_proposer  # noqa: E402
from research.proposing.space import apply_change, get_value, load_space  # noqa: E402

NOISE_SIGMA = 0.003
SEQ_LEN = 2048


def true_val_bpb(h: dict) -> float:
    """The synthetic objective: a bowl over six keys whose optimum is away from the defaults; the rest is inert."""
    g = lambda key: get_value(h, key)  # noqa: E731
    return (
        1.0
        + 0.020 * math.log2(g("optim.matrix_lr") / 0.08) ** 2
        + 0.010 * math.log2(g("optim.embedding_lr") / 0.3) ** 2
        + 0.010 * math.log2(g("optim.unembedding_lr") / 0.008) ** 2
        + 0.300 * (g("schedule.warmdown_frac") - 0.75) ** 2
        + 0.004 * (g("model.depth") - 10) ** 2
        + 0.500 * (g("optim.weight_decay") - 0.1) ** 2
    )


def run_loop(proposer_cfg: dict, seed: int, proposals: int, hparams: dict, space, sigma: float = NOISE_SIGMA,
             seed_sigma: float = 0.0, baselines: int = 1) -> dict:
    """One simulated run; returns the true gain, the keeps and the proposals made.

    seed_sigma 0 and one baseline: independent noise, sigma known. Otherwise the flow's setting: baselines on
    seeds base, base + 1, ... (their spread is the sigma the keep rule uses), experiments on the base seed.
    """
    noise = np.random.default_rng([seed, 99])
    offsets = np.random.default_rng([seed, 7]).normal(0, seed_sigma, baselines) if seed_sigma else np.zeros(baselines)
    base_seed = int(hparams.get("seed", 0))
    proposer = make_proposer(proposer_cfg)
    current = hparams
    baseline_true = true_val_bpb(current)
    history: list[dict] = []
    for repeat in range(baselines):
        measured = baseline_true + offsets[repeat] + noise.normal(0, sigma)
        history.append({"exp": repeat, "key": None, "value": None, "description": "baseline", "val_bpb": measured,
                        "delta": None, "status": "baseline", "error": "", "seed": base_seed + repeat})
    values = [row["val_bpb"] for row in history]
    best = float(np.mean(values))
    noise_sigma = float(np.std(values, ddof=1)) if baselines > 1 else sigma
    tried: set = set()
    base = "base0"
    keeps = 0
    for exp in range(baselines, baselines + proposals):
        context = ProposalContext(hparams=current, space=space, history=history, best_val_bpb=best,
                                  baseline_val_bpb=values[0], noise_sigma=noise_sigma, tried=tried,
                                  seq_len=SEQ_LEN, seed=seed, keep_margin=2 * noise_sigma, base_sha=base)
        try:
            change = proposer.propose(context).change
        except InvalidProposal as err:
            history.append({"exp": exp, "key": None, "value": None, "description": "", "val_bpb": None,
                            "delta": None, "status": "skip", "error": str(err)})
            continue
        candidate = apply_change(current, change)
        measured = true_val_bpb(candidate) + offsets[0] + noise.normal(0, sigma)
        delta = measured - best
        status = "keep" if delta < -2 * noise_sigma else "discard"
        history.append({"exp": exp, "key": change.key, "value": change.value, "previous": change.previous,
                        "description": change.description, "val_bpb": measured, "delta": delta,
                        "status": status, "error": "", "baseline_sha": base, "seed": base_seed})
        tried.add((base, change.key, change.canonical))
        if status == "keep":
            keeps += 1
            current, best, base = candidate, measured, f"base{exp}"
    return {"gain": baseline_true - true_val_bpb(current), "keeps": keeps}


def compare(seeds: int, proposals: int, names=("local", "random"), sigma: float = NOISE_SIGMA,
            seed_sigma: float = 0.0, baselines: int = 1, local_overrides: dict | None = None) -> dict[str, dict]:
    space = load_space(ROOT / "conf/space.yaml")
    hparams = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
    results = {}
    for name in names:
        cfg = yaml.safe_load((ROOT / f"conf/proposer/{name}.yaml").read_text())
        if name == "local":
            cfg.update(local_overrides or {})
        start = time.perf_counter()
        runs = [run_loop(cfg, seed, proposals, hparams, space, sigma, seed_sigma, baselines) for seed in range(seeds)]
        elapsed = time.perf_counter() - start
        gains = np.array([r["gain"] for r in runs])
        results[name] = {
            "mean_gain": float(gains.mean()),
            "median_gain": float(np.median(gains)),
            "std_gain": float(gains.std()),
            "mean_keeps": float(np.mean([r["keeps"] for r in runs])),
            "ms_per_proposal": 1000 * elapsed / (seeds * proposals),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--proposals", type=int, default=16)
    parser.add_argument("--run-sigma", type=float, default=NOISE_SIGMA, help="noise of every single measurement")
    parser.add_argument("--seed-sigma", type=float, default=0.0, help="spread of the per-training-seed offset")
    parser.add_argument("--baselines", type=int, default=1, help="baseline repeats (seeds 42, 43, ...)")
    parser.add_argument("--proposers", default="local,random", help="conf/proposer names, comma-separated: local,tpe,random")
    parser.add_argument("--local", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of conf/proposer/local.yaml (YAML value), e.g. priors={} paired=false")
    args = parser.parse_args()
    if args.seed_sigma and args.baselines < 2:
        parser.error("--seed-sigma needs --baselines 2 or more: the keep rule's sigma comes from their spread")
    overrides = {}
    for item in args.local:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--local takes KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    results = compare(args.seeds, args.proposals, names=tuple(args.proposers.split(",")), sigma=args.run_sigma,
                      seed_sigma=args.seed_sigma, baselines=args.baselines, local_overrides=overrides)
    print(f"synthetic objective, {args.proposals} proposals per run, {args.seeds} seeds, run noise {args.run_sigma}, "
          f"seed noise {args.seed_sigma}, {args.baselines} baseline(s), keep threshold 2 sigma"
          + (f", local with {overrides}" if overrides else ""))
    print()
    print("| proposer | mean gain (val_bpb) | median gain | std | mean keeps | ms/proposal |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['mean_gain']:.4f} | {r['median_gain']:.4f} | {r['std_gain']:.4f} | "
              f"{r['mean_keeps']:.2f} | {r['ms_per_proposal']:.1f} |")
    if results.get("random", {}).get("mean_gain") and "local" in results:
        ratio = results["local"]["mean_gain"] / results["random"]["mean_gain"]
        print()
        print(f"local / random mean gain: {ratio:.2f}x")


if __name__ == "__main__":
    main()
