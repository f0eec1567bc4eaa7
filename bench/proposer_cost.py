"""What one proposal costs over a long ledger: seconds and peak Python memory per proposer at N rows.

The ledger is synthetic (random one-change rows over conf/space.yaml's float keys: a quarter keeps, a quarter
crashes), which is enough for the cost: it depends on the number of rows, not on what they say.

    .venv/bin/python bench/proposer_cost.py --rows 1000 --proposers local,tpe,random
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from research.proposing.proposers import ProposalContext, make_proposer  # noqa: E402
from research.proposing.space import load_space  # noqa: E402


def synthetic_history(space, hparams: dict, rows: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    floats = [key for key in space.keys if space[key].type == "float"]
    history = [{"exp": 0, "status": "baseline", "val_bpb": 1.0, "seed": hparams.get("seed")}]
    for exp in range(1, rows + 1):
        key = rng.choice(floats)
        delta = rng.gauss(0, 0.003)
        history.append({"exp": exp, "key": key, "value": rng.uniform(space[key].min, space[key].max),
                        "status": rng.choice(["discard", "discard", "keep", "crash"]), "delta": delta,
                        "val_bpb": 1.0 + delta})
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--proposers", default="local,tpe,random")
    args = parser.parse_args()
    space = load_space(ROOT / "conf/space.yaml")
    hparams = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
    history = synthetic_history(space, hparams, args.rows)
    print(f"{args.rows} ledger rows, {args.repeats} proposals each (different seeds)\n")
    print("| proposer | median s/proposal | max s/proposal | peak Python memory (MB) |")
    print("|---|---|---|---|")
    for name in args.proposers.split(","):
        cfg = yaml.safe_load((ROOT / f"conf/proposer/{name}.yaml").read_text())
        seconds = []
        for seed in range(args.repeats):
            context = ProposalContext(hparams=hparams, space=space, history=history, seq_len=2048, seed=seed)
            started = time.perf_counter()
            make_proposer(cfg).propose(context)
            seconds.append(time.perf_counter() - started)
        tracemalloc.start()  # a separate proposal: tracing slows Python several-fold, so it is not timed
        make_proposer(cfg).propose(ProposalContext(hparams=hparams, space=space, history=history, seq_len=2048))
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"| {name} | {statistics.median(seconds):.3f} | {max(seconds):.3f} | {peak:.1f} |")


if __name__ == "__main__":
    main()
