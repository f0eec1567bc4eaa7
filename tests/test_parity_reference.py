"""Parity with the reference trainer (karpathy/autoresearch train.py), each checked against its definition:

- the sliding window: the reference passes flash-attention window_size=(W, 0), which lets query i see the keys
  i - W .. i, i.e. W + 1 keys (1,025 at the default short window of 1,024);
- Muon's normalisation before the Newton-Schulz iterations: X / (||X||_F * 1.02 + 1e-6).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.attention import attention, use_attention_impl
from optim.muon import orthogonalize


def flash_window_allowed(T: int, reach: int | None) -> torch.Tensor:
    """(T, T) booleans straight from flash-attention's window (reach, 0) with causal=True: j in [i - reach, i]."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    if reach is None:
        return j <= i
    return (j <= i) & (j >= i - reach)


def dense(q, k, v, allowed):
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(q.size(-1))
    return (scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v.double()).float()


def qkv(T, H=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, H, T, D, generator=g) for _ in range(3)]


# Near the thresholds: reach 1, a reach one short of full (T - 2), exactly full (T - 1), past it, and the banded
# path's block sizes (reach 63/64/127/128 around C = 64).
@pytest.mark.parametrize("T,reach", [(40, 1), (40, 38), (40, 39), (40, 200), (300, 63), (300, 64), (400, 127),
                                     (400, 128), (257, 100)])
@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_window_is_flash_attentions_reach(T, reach, impl):
    q, k, v = qkv(T)
    expected = dense(q, k, v, flash_window_allowed(T, reach))
    torch.testing.assert_close(attention(q, k, v, reach, impl), expected, atol=2e-5, rtol=1e-4)


def test_default_short_window_sees_1025_keys():
    """At the default (seq_len 2048, short window 1024) the last query sees positions 1023..2047: 1,025 keys.
    Changing key 1023 moves it; changing key 1022 does not."""
    T, reach = 2048, 1024
    q, k, v = qkv(T, H=1, D=4, seed=1)
    with use_attention_impl("sdpa"):
        base = attention(q, k, v, reach)[0, 0, -1]
        for position, moves in ((T - 1 - reach, True), (T - 2 - reach, False)):
            v2 = v.clone()
            v2[0, 0, position] += 10.0
            changed = not torch.allclose(attention(q, k, v2, reach)[0, 0, -1], base)
            assert changed == moves, f"key {position} {'should' if moves else 'should not'} reach the last query"
    assert int(flash_window_allowed(T, reach)[-1].sum()) == 1025


def test_mlx_window_mask_is_flash_attentions_reach():
    pytest.importorskip("mlx.core", reason="pip install -e '.[mlx-cpu]' for the MLX port")
    from models.gpt_mlx import window_mask

    for T, reach in ((40, 1), (40, 38), (300, 64)):
        allowed = np.array(window_mask(T, reach)) == 0.0
        np.testing.assert_array_equal(allowed, flash_window_allowed(T, reach).numpy())


@pytest.mark.parametrize("scale", [1e-7, 1e-6, 1e-5, 1.0])  # where the epsilon matters, and where it does not
def test_muon_normalisation_epsilon_is_the_references(scale):
    """With no Newton-Schulz step, orthogonalize returns the normalised matrix itself: G / (|G|_F * 1.02 + 1e-6)."""
    G = torch.randn(3, 16, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    G = G / G.norm(dim=(-2, -1), keepdim=True) * scale
    expected = G / (G.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    torch.testing.assert_close(orthogonalize(G, 0, torch.float64), expected, rtol=1e-12, atol=0)


def test_mlx_muon_normalisation_epsilon_is_the_references():
    mx = pytest.importorskip("mlx.core", reason="pip install -e '.[mlx-cpu]' for the MLX port")
    from optim.muon_mlx import orthogonalize as orthogonalize_mlx

    G = np.random.default_rng(3).standard_normal((2, 8, 12)).astype(np.float32)
    G = G / np.linalg.norm(G, axis=(-2, -1), keepdims=True) * 1e-6
    expected = G / (np.linalg.norm(G, axis=(-2, -1), keepdims=True) * 1.02 + 1e-6)
    got = np.array(orthogonalize_mlx(mx.array(G), 0, mx.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# ------------------------------------------------------------------ embeddings stored in bf16 (the GPU presets)
def tiny_model():
    from models.gpt import GPT
    from models.hparams import GPTConfig

    model = {"depth": 2, "aspect_ratio": 32, "head_dim": 32, "kv_head_ratio": 1, "mlp_ratio": 4, "activation": "relu2",
             "window_pattern": "SL", "short_window_frac": 0.5, "value_residual": True, "logit_softcap": 15.0,
             "rope_base": 10000.0, "qk_norm": True, "ve_gate_channels": 32}
    torch.manual_seed(0)
    return GPT(GPTConfig.from_hparams(model, 64, 32))


def test_bf16_embeddings_are_the_token_and_value_embeddings_and_their_adam_state():
    from optim import build_optimizer

    optim_hparams = {"matrix_lr": 0.04, "weight_decay": 0.2, "weight_decay_to_zero": True, "cautious_weight_decay": True,
                     "muon_momentum": 0.95, "muon_momentum_warmup_steps": 10, "ns_steps": 5, "normuon_beta2": 0.95,
                     "embedding_lr": 0.6, "unembedding_lr": 0.004, "x0_lr": 0.5, "resid_lr": 0.005,
                     "adam_beta1": 0.8, "adam_beta2": 0.95, "x0_adam_beta1": 0.96}
    model = tiny_model()
    model.store_embeddings_in("bfloat16")
    embeddings = {id(model.wte.weight)} | {id(e.weight) for e in model.value_embeds.values()}
    assert len(embeddings) == 2  # the token embedding and the one value embedding of a depth-2 model
    for p in model.parameters():
        assert p.dtype == (torch.bfloat16 if id(p) in embeddings else torch.float32)
    optimizer = build_optimizer(model, optim_hparams, torch.float32)
    idx = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(1))
    loss = model(idx, idx)  # no autocast: the bf16 lookups join the fp32 stream
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert optimizer.state[model.wte.weight]["exp_avg_sq"].dtype == torch.bfloat16
    assert model.wte.weight.dtype == torch.bfloat16 and torch.isfinite(model.wte.weight.float()).all()


def test_bf16_embeddings_compute_the_same_function_on_their_rounded_values():
    fp32 = tiny_model()
    with torch.no_grad():
        for embedding in (fp32.wte, *fp32.value_embeds.values()):
            embedding.weight.copy_(embedding.weight.to(torch.bfloat16).float())  # the values bf16 can hold
    bf16 = tiny_model()
    bf16.load_state_dict(fp32.state_dict())
    bf16.store_embeddings_in("bfloat16")
    idx = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(bf16(idx), fp32(idx), atol=0, rtol=0)


def test_an_unknown_embedding_dtype_is_one_sentence():
    with pytest.raises(ValueError, match=r"^train.embedding_dtype='float16' is not one of float32, bfloat16\.$"):
        tiny_model().store_embeddings_in("float16")


def test_the_gpu_presets_store_embeddings_in_bf16_and_the_cpu_in_fp32():
    import yaml

    from common.paths import PROJECT_ROOT

    def train_of(name):
        return yaml.safe_load((PROJECT_ROOT / "conf" / name).read_text()).get("train") or {}

    assert train_of("config.yaml")["embedding_dtype"] == "float32"
    assert train_of("preset/datacenter.yaml")["embedding_dtype"] == "bfloat16"
    assert train_of("preset/consumer.yaml")["embedding_dtype"] == "bfloat16"
    assert "embedding_dtype" not in train_of("preset/cpu.yaml")  # the default, fp32 (BENCHMARKS.md: why)


def test_under_autocast_the_stream_stays_bf16_as_the_references_and_without_it_fp32():
    from models.gpt import GPT

    model = tiny_model()
    model.store_embeddings_in("bfloat16")
    idx = torch.zeros(1, 4, dtype=torch.long)
    assert GPT._lookup(model.wte, idx).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert GPT._lookup(model.wte, idx).dtype == torch.bfloat16
        assert model(idx).dtype == torch.float32  # the logits are soft-capped in fp32 all the same


def test_the_trainer_builds_the_model_with_the_configured_embedding_dtype(tmp_path, tiny_dataset):
    from hardware import get_adapter
    from tests.training_helpers import make_experiment
    from training.run_config import load_run_config
    from training.torch_port import build_model

    cfg = load_run_config(make_experiment(tmp_path, tiny_dataset))
    assert build_model(cfg, get_adapter("cpu")).wte.weight.dtype == torch.float32  # conf/config.yaml's default
    cfg["train"]["embedding_dtype"] = "bfloat16"
    model = build_model(cfg, get_adapter("cpu"))
    assert {e.weight.dtype for e in (model.wte, *model.value_embeds.values())} == {torch.bfloat16}
