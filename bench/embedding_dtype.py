"""Token and value embeddings stored in fp32 or bf16 (train.embedding_dtype): which trains faster on this machine?

    python bench/embedding_dtype.py                 # the cpu preset's block, 20 steps per run, 3 rounds
    python bench/embedding_dtype.py --preset consumer --steps 10 --rounds 2   # on a GPU (bench/gpu_check.py
                                                                             # times it too, in its child processes)

Each run builds the preset's model (random weights, random token ids of the bundled vocabulary's size), then
times --steps optimizer steps (forward, backward, MuonAdamW) under the backend adapter's autocast, after one
untimed warm-up step. The two dtypes alternate within every round, so a load that comes and goes (other jobs on
the cores) falls on both; the table gives each run's tokens per wall second and per CPU second of this process
(the work itself, which other jobs on a shared CPU disturb less), and the medians per dtype.
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


def time_steps(cfg: dict, adapter, dtype: str, steps: int) -> tuple[float, float]:
    """(tokens per wall second, tokens per CPU second) of `steps` optimizer steps, embeddings stored in `dtype`."""
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

    step()
    adapter.synchronize()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    adapter.synchronize()
    tokens = steps * accum * batch * seq_len
    return tokens / (time.perf_counter() - started), tokens / (time.process_time() - cpu_started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    adapter = get_adapter(detect("auto"))
    adapter.setup()
    cfg = preset_config(args.preset)
    rates: dict[str, list[tuple[float, float]]] = {"float32": [], "bfloat16": []}
    print(f"{adapter.device_name()}, autocast {adapter.autocast_dtype}, preset {args.preset}, {args.steps} steps per run")
    print("| round | float32 tok/s | bfloat16 tok/s | float32 tok/CPU-s | bfloat16 tok/CPU-s |\n|---:|---:|---:|---:|---:|")
    for round_ in range(args.rounds):
        order = ("float32", "bfloat16") if round_ % 2 == 0 else ("bfloat16", "float32")
        for dtype in order:
            rates[dtype].append(time_steps(cfg, adapter, dtype, args.steps))
        (w32, c32), (w16, c16) = rates["float32"][-1], rates["bfloat16"][-1]
        print(f"| {round_ + 1} | {w32:,.0f} | {w16:,.0f} | {c32:,.0f} | {c16:,.0f} |", flush=True)
    med = {dtype: [statistics.median(r[i] for r in runs) for i in (0, 1)] for dtype, runs in rates.items()}
    print(f"| median | {med['float32'][0]:,.0f} | {med['bfloat16'][0]:,.0f} | {med['float32'][1]:,.0f} | "
          f"{med['bfloat16'][1]:,.0f} |")
    print(f"bf16 embeddings against fp32: {100 * (med['bfloat16'][0] / med['float32'][0] - 1):+.1f}% tokens per wall "
          f"second, {100 * (med['bfloat16'][1] / med['float32'][1] - 1):+.1f}% per CPU second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
