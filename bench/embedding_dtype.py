"""Token and value embeddings stored in fp32 or bf16 (train.embedding_dtype): which trains faster on this machine?

    python bench/embedding_dtype.py                 # the cpu preset's block, 20 steps per run, 3 rounds
    python bench/embedding_dtype.py --preset consumer --steps 10 --rounds 2   # on a GPU (bench/gpu_check.py
                                                                             # times it too, in its child processes)

Each run builds the preset's model (random weights, random token ids of the bundled vocabulary's size), then
times --steps optimizer steps (forward, backward, MuonAdamW) under the backend adapter's autocast, after two
untimed warm-up steps. The two dtypes alternate within every round, so a load that comes and goes (other jobs on
the cores) falls on both; the table gives each run's tokens/s and the median per dtype.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.gpu_check import preset_config  # noqa: E402
from hardware import detect, get_adapter  # noqa: E402
from models.gpt import GPT  # noqa: E402
from models.hparams import GPTConfig  # noqa: E402
from optim import build_optimizer  # noqa: E402

VOCAB = 8192  # the bundled dataset's


def time_steps(cfg: dict, adapter, dtype: str, steps: int) -> float:
    """Tokens per second of `steps` optimizer steps with the embeddings stored in `dtype`."""
    hp, seq_len = cfg["hparams"], int(cfg["train"]["seq_len"])
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_hparams(hp["model"], VOCAB, seq_len)).to(adapter.device)
    model.store_embeddings_in(dtype)
    optimizer = build_optimizer(model, hp["optim"], adapter.ortho_dtype)
    batch = int(hp["batch"]["device_batch_size"])
    accum = max(1, int(hp["batch"]["total_batch_tokens"]) // (batch * seq_len))
    idx = torch.randint(0, VOCAB, (batch, seq_len + 1), generator=torch.Generator().manual_seed(1)).to(adapter.device)

    def step() -> None:
        for _ in range(accum):
            with adapter.autocast():
                loss = model(idx[:, :-1], idx[:, 1:]) / accum
            loss.backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    adapter.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    adapter.synchronize()
    return steps * accum * batch * seq_len / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    adapter = get_adapter(detect("auto"))
    adapter.setup()
    cfg = preset_config(args.preset)
    rates: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    print(f"{adapter.device_name()}, autocast {adapter.autocast_dtype}, preset {args.preset}, {args.steps} steps per run")
    print("| round | float32 tokens/s | bfloat16 tokens/s |\n|---:|---:|---:|")
    for round_ in range(args.rounds):
        order = ("float32", "bfloat16") if round_ % 2 == 0 else ("bfloat16", "float32")
        for dtype in order:
            rates[dtype].append(time_steps(cfg, adapter, dtype, args.steps))
        print(f"| {round_ + 1} | {rates['float32'][-1]:,.0f} | {rates['bfloat16'][-1]:,.0f} |", flush=True)
    fp32, bf16 = statistics.median(rates["float32"]), statistics.median(rates["bfloat16"])
    print(f"| median | {fp32:,.0f} | {bf16:,.0f} |")
    print(f"bf16 embeddings: {100 * (bf16 / fp32 - 1):+.1f}% tokens/s against fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
