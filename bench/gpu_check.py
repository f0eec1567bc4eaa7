"""The one-call GPU check: everything a GPU session should measure, in one command, with torch alone.

    python bench/gpu_check.py --out "$OUT"                       # on the lent GPU machine (carry datasets/bundled)
    python bench/gpu_check.py --out /tmp/x --preset cpu --steps 3 --seconds 5 --compare eager \\
        --device-name "NVIDIA H100 80GB HBM3"                   # the same code path on a CPU (tests do this)

It needs only torch, numpy and PyYAML: no Prefect, Hydra or DVC (the lent machine has none of them). The
configuration is this repository's conf/ (THE hyperparameter block and a preset, merged the way Hydra would
for these plain files), and every training and evaluation is the real child process
(`python -m training.entry`, `python -m training.evaluate`), as in a research run. Sections:
  1. environment: device, torch, triton, CUDA, memory; a measured bf16 matmul rate (TFLOP/s);
  2. flex gradients: the compiled flex_attention model's loss and gradients against the eager sdpa model
     (CUDA only: torch has no CPU kernel for flex's backward);
  3. eager over --steps steps, against the compiled training of 4: tokens/s, MFU under both FLOP conventions,
     peak memory, time to the first step (compile included);
     A mode with the suffix -fp32-embeddings or -bf16-embeddings stores the token and value embeddings so
     (train.embedding_dtype): the default `eager,eager-fp32-embeddings` times the GPU presets' bf16 embeddings
     (the reference trainer's) against fp32 ones, tokens/s and peak memory side by side;
  4. a --seconds training (compiled: the GPU's default) with its evaluation: val_bpb, steps, tokens;
  5. fit: for each --fit-presets preset (datacenter and consumer on a GPU), training.fit's predicted peak memory
     against the training's torch.cuda.max_memory_allocated over a 3-step compiled training, one line each.
Sized for the lent machine's 8 minutes: one compile (the flex check's is small), --steps 10 eager steps,
300 s of training, and an evaluation of at most the validation split (the bundled one holds 130k tokens;
the preset's 20M would walk it 160 times).
The table goes to OUT/gpu_check.md (and stdout), the raw figures to OUT/gpu_check.json, the children's
output to OUT/gpu_check.log. MFU uses --device-name's peak when given (so a CPU test exercises it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from hardware import detect, get_adapter  # noqa: E402
from hardware.peak_flops import AMD, NVIDIA, lookup  # noqa: E402
from training.entry import ALLOCATOR_SETTINGS  # noqa: E402
from training.fit import device_facts, predict  # noqa: E402
from training.metrics import mfu_percent  # noqa: E402
from training.run_config import ExperimentDir, training_config, write_training_config  # noqa: E402

CONF = ROOT / "conf"


def merged(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_config(preset: str) -> dict:
    """conf/config.yaml's train and budget sections and the hyperparameter block, with the preset on top."""
    top = yaml.safe_load((CONF / "config.yaml").read_text())
    cfg = {"train": top["train"], "budget": top["budget"], "backend": "auto",
           "hparams": yaml.safe_load((CONF / "hparams" / "default.yaml").read_text())}
    overlay = yaml.safe_load((CONF / "preset" / f"{preset}.yaml").read_text()) or {}
    overlay.pop("defaults", None)  # the dataset choice: this check trains on --data
    return merged(cfg, {k: v for k, v in overlay.items() if k in ("train", "budget", "hparams")})


def environment(adapter, device_name: str) -> dict:
    info = {"device": device_name, "backend": adapter.name, "torch": torch.__version__,
            "cuda": torch.version.cuda or torch.version.hip, "python": platform.python_version()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    memory = adapter.total_memory_bytes()
    info["memory_gb"] = round(memory / 1e9, 1) if memory else None
    info["bf16_matmul_tflops"] = round(matmul_tflops(adapter), 1 if adapter.device.type != "cpu" else 3)
    return info


def matmul_tflops(adapter, dtype=torch.bfloat16) -> float:
    """Mean rate of ten n x n x n products after three warm-ups (n = 8192 on a GPU, 512 on a CPU)."""
    n = 8192 if adapter.device.type != "cpu" else 512
    a = torch.randn(n, n, device=adapter.device, dtype=dtype)
    b = torch.randn(n, n, device=adapter.device, dtype=dtype)
    for _ in range(3):
        a @ b
    adapter.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    adapter.synchronize()
    return 10 * 2 * n**3 / (time.perf_counter() - started) / 1e12


def flex_gradients(adapter) -> dict:
    """Loss and gradients of the compiled flex model against the eager model (sdpa), same weights and batch."""
    if adapter.device.type != "cuda":
        return {"skipped": "flex_attention has no backward kernel on the CPU in torch; runs on CUDA only"}
    from models.attention import use_attention_impl
    from models.gpt import GPT, GPTConfig

    hp = yaml.safe_load((CONF / "hparams" / "default.yaml").read_text())["model"]
    config = GPTConfig.from_hparams(dict(hp, depth=4, aspect_ratio=64, head_dim=64, kv_head_ratio=2), 8192, 1024)
    torch.manual_seed(0)
    model = GPT(config).to(adapter.device)
    with torch.no_grad():
        for p in model.parameters():  # non-trivial weights, so every path carries gradient
            p.normal_(0.0, 0.05)
    x = torch.randint(0, 8192, (4, 1024), device=adapter.device)
    y = torch.roll(x, -1, dims=1)

    def loss_and_grads(module, impl):
        model.zero_grad(set_to_none=True)
        with use_attention_impl(impl), adapter.autocast():
            loss = module(x, y)
        loss.backward()
        return loss.item(), [p.grad.float().clone() for p in model.parameters()]

    eager_loss, eager_grads = loss_and_grads(model, "sdpa")
    flex_loss, flex_grads = loss_and_grads(torch.compile(model, dynamic=False), "flex")
    worst = max(((f - e).norm() / e.norm().clamp_min(1e-12)).item() for f, e in zip(flex_grads, eager_grads))
    return {"loss_eager_sdpa": eager_loss, "loss_compiled_flex": flex_loss, "max_relative_grad_diff": worst,
            "ok": abs(flex_loss - eager_loss) < 1e-2 and worst < 5e-2}


EMBEDDING_SUFFIXES = {"-fp32-embeddings": "float32", "-bf16-embeddings": "bfloat16"}


def compare_train(mode: str) -> dict:
    """The train settings of a --compare mode: `eager` or `compiled`, optionally with an embedding-dtype suffix."""
    train = {}
    for suffix, dtype in EMBEDDING_SUFFIXES.items():
        if mode.endswith(suffix):
            mode, train["embedding_dtype"] = mode[: -len(suffix)], dtype
    if mode not in ("eager", "compiled"):
        raise SystemExit(f"error: --compare mode {mode!r} is not eager or compiled (with an optional "
                         f"{' or '.join(EMBEDDING_SUFFIXES)} suffix).")
    return {**train, "compile": mode == "compiled"}


def run_child(module: str, exp_dir: Path, log, timeout: float) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault(*ALLOCATOR_SETTINGS)
    log.write(f"\n=== python -m {module} {exp_dir}\n")
    log.flush()
    return subprocess.run([sys.executable, "-m", module, str(exp_dir)], cwd=ROOT, env=env, stdout=log,
                          stderr=subprocess.STDOUT, timeout=timeout).returncode


def train(name: str, cfg: dict, data: dict, work: Path, log, *, evaluate: bool, timeout: float) -> dict:
    exp_dir = work / name
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_training_config(exp_dir, training_config(cfg, cfg["hparams"], cfg["hparams"]["seed"], data))
    started = time.perf_counter()
    code = run_child("training.entry", exp_dir, log, timeout)
    files = ExperimentDir(exp_dir)
    metrics = json.loads(files.metrics.read_text()) if files.metrics.is_file() else {}
    metrics["process_seconds"] = time.perf_counter() - started
    if code != 0:
        return {"status": "failed", "reason": metrics.get("reason", f"exit code {code}")}
    if evaluate:
        code = run_child("training.evaluate", exp_dir, log, timeout)
        evaluation = json.loads(files.evaluation.read_text()) if files.evaluation.is_file() else {}
        metrics.update({"val_bpb": evaluation.get("val_bpb"), "eval_seconds": evaluation.get("eval_seconds"),
                        "eval_tokens": evaluation.get("eval_tokens"),
                        "eval_status": evaluation.get("status", f"exit code {code}")})
    return metrics


def fit_check(preset: str, data: dict, vocab: int, work: Path, log, adapter, steps: int = 3) -> dict:
    """training.fit's prediction for the preset's block on this device, against the peak its training measured
    (metrics.json's peak_tensor_gb: torch.cuda.max_memory_allocated on CUDA, the CPU meter elsewhere)."""
    cfg = merged(preset_config(preset), {"budget": {"kind": "steps", "steps": steps}})
    seq_len = int(cfg["train"]["seq_len"])
    facts = device_facts(adapter, cfg["train"].get("compile", "auto"), "steps", seq_len,
                         embedding_dtype=cfg["train"].get("embedding_dtype") or "float32")
    prediction = predict(cfg["hparams"], seq_len, vocab, cfg["budget"], facts)
    metrics = train(f"fit-{preset}", cfg, data, work, log, evaluate=False, timeout=900)
    measured = metrics.get("peak_tensor_gb")
    return {"preset": preset, "status": metrics.get("status", "failed"), "reason": metrics.get("reason"),
            "compiled": facts.compiled, "predicted_gb": prediction.peak_gb, "measured_gb": measured,
            "error": prediction.peak_gb / measured - 1 if measured else None,
            "need_gb": prediction.need_bytes / 1e9, "device_gb": facts.memory_bytes / 1e9, "fits": prediction.fits}


def fit_line(fit: dict) -> str:
    if fit["status"] != "ok" or not fit["measured_gb"]:
        return f"fit {fit['preset']}: predicted {fit['predicted_gb']:.2f} GB; training {fit['status']}: {fit['reason']}"
    return (f"fit {fit['preset']}: predicted {fit['predicted_gb']:.2f} GB, measured (max_memory_allocated) "
            f"{fit['measured_gb']:.2f} GB, {100 * fit['error']:+.1f}%; compiled {fit['compiled']}; predicted need "
            f"{fit['need_gb']:.1f} of {fit['device_gb']:.1f} GB ({'fits' if fit['fits'] else 'does not fit'})")


def table(report: dict) -> str:
    env, lines = report["environment"], []
    lines.append("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    lines.append(f"flex gradients: {json.dumps(report['flex_gradients'])}")
    lines.append("")
    lines.append("| run | status | steps | tokens/s | MFU % (causal) | MFU % (6N+12hdT) | peak GB | first step s | "
                 "machine GFLOP/s | val_bpb | eval s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in report["runs"].items():
        if m.get("status") != "ok":
            lines.append(f"| {name} | {m.get('status')}: {m.get('reason')} | | | | | | | | | |")
            continue
        cell = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {name} | ok | {m['steps']} | {m['tokens_per_second']:,.0f} | {cell(m['mfu_causal'], '.1f')} | "
                     f"{cell(m['mfu_full_attention'], '.1f')} | {cell(m.get('peak_memory_gb'), '.1f')} | "
                     f"{m['warmup_seconds']:.1f} | {cell(m.get('machine_speed'), ',.0f')} | "
                     f"{cell(m.get('val_bpb'), '.4f')} | {cell(m.get('eval_seconds'), '.1f')} |")
    lines.append("")
    lines.extend(fit_line(fit) for fit in report.get("fit", []))
    lines.append("first step s: the warm-up forward/backward before the budget starts (torch.compile included); "
                 "machine GFLOP/s: the speed probe's median (training.loop.SpeedProbe, research/judging/speed.py); "
                 "eval s: the uncompiled evaluation process, start to end.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--data", type=Path, default=ROOT / "datasets" / "bundled",
                        help="a dataset folder with shards/ and tokenizer/ (default: the bundled one, carried)")
    parser.add_argument("--preset", default="datacenter")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps of each --compare run")
    parser.add_argument("--seconds", type=float, default=300, help="time budget of the training with evaluation")
    parser.add_argument("--eval-tokens", type=int, default=None,
                        help="default: the preset's train.eval_tokens, at most the validation split's tokens - 1")
    parser.add_argument("--compare", default="eager,eager-fp32-embeddings",
                        help="step-budgeted runs to time beside the timed one (eager, compiled or both; a suffix "
                             "-fp32-embeddings or -bf16-embeddings sets train.embedding_dtype for that run)")
    parser.add_argument("--device-name", default=None, help="name for the peak-FLOPS lookup (default: the device's)")
    parser.add_argument("--fit-presets", default="datacenter,consumer" if torch.cuda.is_available() else "",
                        help="presets whose predicted peak memory (training.fit) is set against a 3-step training's "
                             "measured one (default: datacenter,consumer on a GPU, none elsewhere)")
    parser.add_argument("--work", type=Path, default=None,
                        help="experiment folders, checkpoints included (default: a new temporary folder, not under --out)")
    args = parser.parse_args(argv)

    shards = args.data / "shards"
    if not (shards / "manifest.json").is_file():
        print(f"error: {shards} holds no manifest.json; build it with `autoresearch prepare` and carry "
              f"{args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    adapter = get_adapter(detect("auto"))
    adapter.setup()
    device_name = args.device_name or adapter.device_name()
    peak = lookup(device_name, NVIDIA) or lookup(device_name, AMD) or adapter.peak_flops()
    manifest = json.loads((shards / "manifest.json").read_text())
    data = {"shard_dir": str(shards), "tokenizer_dir": str(args.data / "tokenizer"),
            "data_version": manifest["data_version"]}
    base = preset_config(args.preset)
    base["train"]["eval_tokens"] = args.eval_tokens or min(int(base["train"]["eval_tokens"]),
                                                           int(manifest["tokens"]["val"]) - 1)

    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    report = {"environment": environment(adapter, device_name), "flex_gradients": flex_gradients(adapter), "runs": {}}
    print(table(report), flush=True)
    with open(args.out / "gpu_check.log", "w") as log:
        for mode in [m for m in args.compare.split(",") if m]:
            cfg = merged(base, {"train": compare_train(mode), "budget": {"kind": "steps", "steps": args.steps}})
            report["runs"][f"{mode} {args.steps} steps"] = train(mode, cfg, data, work, log, evaluate=False, timeout=900)
        cfg = merged(base, {"budget": {"kind": "time", "seconds": args.seconds}})
        report["runs"][f"{args.seconds:g} s + eval"] = train("budget", cfg, data, work, log, evaluate=True,
                                                            timeout=3 * args.seconds + 900)
        report["fit"] = [fit_check(preset, data, int(manifest["vocab_size"]), work, log, adapter)
                         for preset in args.fit_presets.split(",") if preset]
    for metrics in report["runs"].values():
        if metrics.get("status") == "ok":
            # Recomputed against --device-name's peak (the child used its own device's name).
            tokens_per_second = metrics["tokens_per_second"]
            metrics["mfu_causal"] = mfu_percent(metrics["flops_per_token"], tokens_per_second, peak)
            metrics["mfu_full_attention"] = mfu_percent(metrics["flops_per_token_full_attention"], tokens_per_second, peak)
    text = table(report)
    (args.out / "gpu_check.md").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(text)
    return 0 if all(m.get("status") == "ok" for m in report["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
