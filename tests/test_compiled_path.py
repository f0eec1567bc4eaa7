"""The GPU's code path, run on the CPU: torch.compile with flex_attention, and the CUDA adapter's policies.

torch 2.13 compiles flex_attention's forward on the CPU (inductor), not its backward, so this checks the
compiled forward of the exact model every CUDA user trains (sliding-window S layers and full L layers, GQA
on and off) against the dense reference; the flex gradients are checked by bench/gpu_check.py on a GPU.
"""

import pytest
import torch

import models.attention as attention_module
from hardware.cuda import CUDAAdapter
from models.attention import use_attention_impl
from models.gpt import GPT, GPTConfig
from tests.test_model_gpt import DEFAULTS, randomize

VOCAB, SEQ = 97, 256


def small_model(**overrides) -> GPT:
    model = dict(DEFAULTS["model"], depth=2, aspect_ratio=32, head_dim=16, window_pattern="SL",
                 short_window_frac=0.25)  # width 64, 4 heads; the S layer sees 64 of 256 tokens
    model.update(overrides)
    torch.manual_seed(0)
    return randomize(GPT(GPTConfig.from_hparams(model, VOCAB, SEQ)))


def dense_reference(kv_head_ratio: int, seed: int, batch: int = 2) -> tuple[GPT, torch.Tensor, torch.Tensor]:
    """A small model, a batch of tokens, and the model's logits through the dense reference attention."""
    model = small_model(kv_head_ratio=kv_head_ratio)
    x = torch.randint(0, VOCAB, (batch, SEQ), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), use_attention_impl("naive"):
        return model, x, model(x)


def count_flex_calls(monkeypatch) -> list:
    calls = []
    real = attention_module._flex

    def counting(q, k, v, window):
        calls.append(window)
        return real(q, k, v, window)

    monkeypatch.setattr(attention_module, "_flex", counting)
    return calls


@pytest.mark.slow
def test_compiled_flex_forward_matches_the_dense_reference(monkeypatch):
    """fp32, GQA off (the adapter test below covers GQA on, in bf16): each compile costs ~15-50 s here."""
    model, x, expected = dense_reference(kv_head_ratio=1, seed=0)
    calls = count_flex_calls(monkeypatch)
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=False, fullgraph=True)  # fullgraph: a graph break is an error
    with torch.no_grad(), use_attention_impl("flex"):
        got = compiled(x)
        again = compiled(torch.roll(x, 1, dims=1))  # new data, same shapes: no recompile needed
    assert set(calls) == {65, SEQ}  # traced with both spans: the S layer (reach 64 + itself) and the full L layer
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)
    assert not torch.allclose(again, got)


def test_uncompiled_flex_request_takes_the_fused_sdpa_path(monkeypatch):
    """Eager flex_attention is a slow dense reference: evaluation and train.compile=false must not take it."""
    calls = count_flex_calls(monkeypatch)
    model, x, expected = dense_reference(kv_head_ratio=2, seed=1, batch=1)
    with torch.no_grad(), use_attention_impl("flex"):
        flex_requested = model(x)
    assert calls == []
    torch.testing.assert_close(flex_requested, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
def test_the_cuda_adapters_policies_run_on_the_cpu(monkeypatch):
    """What the CUDA adapter does that a CPU can run: its matmul precision setting, its compile call
    (dynamic=False), flex attention with GQA and bf16 autocast, on the CPU device, against the fp32 dense
    model."""
    adapter = CUDAAdapter()
    monkeypatch.setattr(CUDAAdapter, "device", property(lambda self: torch.device("cpu")))
    adapter.setup()
    assert torch.get_float32_matmul_precision() == "high"
    torch.set_float32_matmul_precision("highest")
    model, x, expected = dense_reference(kv_head_ratio=2, seed=2)
    calls = count_flex_calls(monkeypatch)
    torch._dynamo.reset()
    compiled = adapter.compile(model)
    with torch.no_grad(), use_attention_impl(adapter.attention_impl), adapter.autocast():
        got = compiled(x)
    assert adapter.attention_impl == "flex" and adapter.autocast_dtype == torch.bfloat16 and set(calls) == {65, SEQ}
    assert got.dtype == torch.float32  # logits are soft-capped in fp32 under autocast too
    assert (got - expected).abs().mean() < 0.05 * expected.abs().mean()  # bf16 rounding, not a wrong model
