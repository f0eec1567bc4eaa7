"""The GPT: shapes, causality, every hyperparameter knob, init, parameter groups and FLOPs."""

from pathlib import Path

import pytest
import torch
import yaml

from models.attention import use_attention_impl
from models.gpt import GPT, GPTConfig

DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/hparams/default.yaml").read_text())
VOCAB, SEQ = 97, 64


def tiny(**overrides) -> dict:
    model = dict(DEFAULTS["model"], depth=3, aspect_ratio=32, head_dim=16)
    model.update(overrides)
    return model


def build(seq_len=SEQ, seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_hparams(tiny(**overrides), VOCAB, seq_len))


def randomize(model: GPT, seed=1) -> GPT:
    """Non-trivial weights everywhere (init zeroes the output projections, which hides most effects)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def tokens(B=2, T=SEQ, seed=0):
    return torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


class Recording(dict):
    def __init__(self, *a):
        super().__init__(*a)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_every_model_key_of_the_block_is_used():
    model = Recording(DEFAULTS["model"])
    GPTConfig.from_hparams(model, VOCAB, 2048)
    assert model.read == set(DEFAULTS["model"])


def test_default_block_sizes():
    c = GPTConfig.from_hparams(DEFAULTS["model"], 32768, 2048)
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.head_dim) == (8, 512, 4, 4, 128)
    assert c.window_pattern == "SSSLSSSL" and c.short_window == 1024 and c.mlp_hidden == 2048
    assert c.windows() == [1024, 1024, 1024, 2048, 1024, 1024, 1024, 2048]


def test_forward_shapes_and_loss():
    model = build()
    logits = model(tokens())
    assert logits.shape == (2, SEQ, VOCAB) and logits.dtype == torch.float32
    y = tokens(seed=1)
    loss = model(tokens(), y)
    assert loss.dim() == 0 and abs(loss.item() - torch.log(torch.tensor(float(VOCAB))).item()) < 0.1  # near-uniform at init
    per_token = model(tokens(), y, loss_reduction="none")
    assert per_token.shape == (2, SEQ)
    torch.testing.assert_close(per_token.mean(), loss)
    y[0, :10] = -1
    assert (model(tokens(), y, loss_reduction="none")[0, :10] == 0).all()  # ignore_index=-1


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_causality(impl):
    model = randomize(build(window_pattern="SL", short_window_frac=0.25))
    x = tokens()
    with use_attention_impl(impl):
        before = model(x)
        x2 = x.clone()
        x2[:, 40:] = (x2[:, 40:] + 1) % VOCAB
        after = model(x2)
    torch.testing.assert_close(before[:, :40], after[:, :40])
    assert not torch.allclose(before[:, 40:], after[:, 40:])


def test_model_sdpa_matches_naive_reference():
    model = randomize(build(window_pattern="S", short_window_frac=0.2, kv_head_ratio=2, aspect_ratio=64))
    x = tokens()
    with use_attention_impl("naive"):
        ref = model(x)
    with use_attention_impl("sdpa"):
        torch.testing.assert_close(model(x), ref, atol=1e-4, rtol=1e-4)


def test_sliding_window_limits_what_a_layer_sees():
    # one S layer then the forced L layer would see everything; with depth 1 the only layer is L
    model = randomize(build(depth=2, window_pattern="S", short_window_frac=1 / 8, value_residual=False))
    assert model.windows == [8, 64]
    # make the last (full) layer a no-op so only the windowed layer carries information
    with torch.no_grad():
        model.blocks[1].attn.c_proj.weight.zero_()
        model.blocks[1].mlp.c_proj.weight.zero_()
        model.x0_lambdas.zero_()
    x = tokens()
    x2 = x.clone()
    x2[:, :20] = (x2[:, :20] + 1) % VOCAB
    a, b = model(x), model(x2)
    torch.testing.assert_close(a[:, 28:], b[:, 28:])  # 19 + a reach of 8: out of reach from 28 on
    assert not torch.allclose(a[:, 20:28], b[:, 20:28])


def test_size_knobs():
    assert len(build(depth=5).blocks) == 5
    c = GPTConfig.from_hparams(tiny(depth=3, aspect_ratio=40, head_dim=16), VOCAB, SEQ)
    assert c.n_embd == 128 and c.n_head == 8  # 120 rounded up to a multiple of 16
    c = GPTConfig.from_hparams(tiny(depth=4, aspect_ratio=32, head_dim=32), VOCAB, SEQ)
    assert (c.n_embd, c.n_head, c.n_kv_head) == (128, 4, 4)
    c = GPTConfig.from_hparams(tiny(depth=4, aspect_ratio=32, head_dim=32, kv_head_ratio=2), VOCAB, SEQ)
    assert c.n_kv_head == 2
    model = GPT(c)
    assert model.blocks[0].attn.c_k.weight.shape == (2 * 32, 128) and model.blocks[0].attn.c_q.weight.shape == (128, 128)
    with pytest.raises(ValueError, match="kv_head_ratio"):
        GPTConfig.from_hparams(tiny(depth=4, aspect_ratio=32, head_dim=32, kv_head_ratio=3), VOCAB, SEQ)
    assert build(mlp_ratio=2).blocks[0].mlp.c_fc.weight.shape == (2 * 96, 96)
    assert build(mlp_ratio=4).blocks[0].mlp.c_fc.weight.shape == (4 * 96, 96)


def test_window_pattern_and_short_window():
    c = GPTConfig.from_hparams(tiny(depth=6, window_pattern="SL"), VOCAB, 1024)
    assert c.window_pattern == "SLSLSL"
    c = GPTConfig.from_hparams(tiny(depth=4, window_pattern="S", short_window_frac=0.25), VOCAB, 1024)
    assert c.window_pattern == "SSSL" and c.windows() == [256, 256, 256, 1024]
    c = GPTConfig.from_hparams(tiny(depth=2, window_pattern="S", short_window_frac=0.3), VOCAB, 2048)
    assert c.short_window == 640  # 614 rounded to a multiple of 128
    c = GPTConfig.from_hparams(tiny(depth=2, window_pattern="S", short_window_frac=0.3), VOCAB, 256)
    assert c.short_window == 76  # below one block: kept as is
    assert GPTConfig.from_hparams(tiny(short_window_frac=0.0001), VOCAB, 256).short_window == 1
    with pytest.raises(ValueError, match="window_pattern"):
        GPTConfig.from_hparams(tiny(window_pattern="SXL"), VOCAB, 256)


def test_activation_knob():
    x = tokens()
    outs = {}
    for act in ("relu2", "gelu", "swiglu"):
        model = randomize(build(activation=act))
        outs[act] = model(x)
        assert (model.blocks[0].mlp.c_gate is not None) == (act == "swiglu")
    assert not torch.allclose(outs["relu2"], outs["gelu"])
    relu2, swiglu = build(activation="relu2"), build(activation="swiglu")
    assert abs(swiglu.num_params() - relu2.num_params()) < 0.05 * relu2.num_params()  # 2/3 hidden keeps it comparable
    with pytest.raises(ValueError, match="activation"):
        build(activation="tanh")


def test_value_residual_knob():
    with_ve = build(depth=4, value_residual=True)
    assert sorted(with_ve.value_embeds.keys()) == ["1", "3"]  # alternating, the last one included
    assert [b.attn.ve_gate is not None for b in with_ve.blocks] == [False, True, False, True]
    assert sorted(build(depth=3).value_embeds.keys()) == ["0", "2"]
    without = build(depth=4, value_residual=False)
    assert len(without.value_embeds) == 0 and all(b.attn.ve_gate is None for b in without.blocks)


def test_value_gate_reads_the_input_and_starts_neutral():
    """gate = 2 * sigmoid(W x[..., :c]) per kv head and token, W of shape (n_kv_head, c), zero at init."""
    model = randomize(build(depth=2, kv_head_ratio=2, ve_gate_channels=8))
    attn = model.blocks[1].attn
    c, n_kv, d = 8, model.config.n_kv_head, model.config.head_dim
    assert attn.ve_gate.weight.shape == (n_kv, c)
    assert any(p is attn.ve_gate.weight for p in model.param_groups()["matrix"])  # Muon, as in the reference
    assert all(p is not attn.ve_gate.weight for p in model.param_groups()["x0"])
    assert torch.all(build(depth=2).blocks[1].attn.ve_gate.weight == 0)  # init: gate 1
    g = torch.Generator().manual_seed(3)
    x, ve = torch.randn(2, SEQ, model.config.n_embd, generator=g), torch.randn(2, SEQ, n_kv * d, generator=g)
    cos, sin = model.rope_cos[:SEQ], model.rope_sin[:SEQ]
    with torch.no_grad(), use_attention_impl("naive"):
        got = attn(x, ve, cos, sin, SEQ)
        gate = 2 * torch.sigmoid(x[..., :c].double() @ attn.ve_gate.weight.double().T)  # (B, T, n_kv)
        gated_ve = (ve.double().view(2, SEQ, n_kv, d) * gate[..., None]).view(2, SEQ, n_kv * d).float()
        attn.ve_gate.weight.zero_()  # now the gate is 1, so feeding the gated embedding must give the same
        expected = attn(x, gated_ve, cos, sin, SEQ)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert build(depth=2, aspect_ratio=4, head_dim=32).config.ve_gate_channels == 32  # never wider than the model


def test_softcap_bounds_logits():
    model = randomize(build(logit_softcap=2.0))
    with torch.no_grad():
        model.lm_head.weight.mul_(100)
    logits = model(tokens())
    assert logits.abs().max() <= 2.0
    uncapped = randomize(build(logit_softcap=0.0))
    with torch.no_grad():
        uncapped.lm_head.weight.mul_(100)
    assert uncapped(tokens()).abs().max() > 2.0


def test_rope_base_and_qk_norm_change_the_output():
    x = tokens()
    base = randomize(build())(x)
    assert not torch.allclose(base, randomize(build(rope_base=100.0))(x))
    assert not torch.allclose(base, randomize(build(qk_norm=False))(x))


def test_init_weights():
    model = build()
    for block in model.blocks:
        assert block.attn.c_proj.weight.abs().max() == 0 and block.mlp.c_proj.weight.abs().max() == 0
    assert model.lm_head.weight.std() < 0.01
    assert 0.9 < model.wte.weight.std() < 1.1
    assert torch.all(model.resid_lambdas == 1)


def test_param_groups_cover_every_parameter_once():
    for overrides in ({}, {"value_residual": False}, {"activation": "swiglu", "kv_head_ratio": 2, "depth": 4}):
        model = build(**overrides)
        groups = model.param_groups()
        assert set(groups) == {"matrix", "embedding", "value_embedding", "unembedding", "x0", "resid"}
        ids = [id(p) for ps in groups.values() for p in ps]
        assert len(ids) == len(set(ids)) == len(list(model.parameters()))
        assert all(p.dim() == 2 for p in groups["matrix"])
        assert groups["embedding"] == [model.wte.weight] and groups["unembedding"] == [model.lm_head.weight]


def test_num_params_and_flops():
    model = build()
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    c = model.config
    matmul = sum(p.numel() for p in model.param_groups()["matrix"]) + model.lm_head.weight.numel()
    full = sum(12 * c.n_head * c.head_dim * (SEQ + 1) / 2 for _ in range(c.n_layer))
    full_model = build(window_pattern="L")
    assert full_model.flops_per_token() == pytest.approx(6 * matmul + full)
    short = build(window_pattern="S", short_window_frac=0.125).flops_per_token()
    assert 6 * matmul < short < full_model.flops_per_token()
    # a window (reach) of 1 attends to two keys per position, one at position 0
    w1 = build(window_pattern="S", short_window_frac=1 / SEQ)
    assert w1.windows[0] == 1
    per_layer = 12 * c.n_head * c.head_dim
    assert w1.flops_per_token() == pytest.approx(6 * matmul + per_layer * (2 * (2 * SEQ - 1) / SEQ + (SEQ + 1) / 2))


def test_full_attention_flops_follow_the_reference_convention():
    """6 N + 12 h d min(window, T) per layer: every query charged its whole window, causal or not."""
    c = build().config
    per_layer = 12 * c.n_head * c.head_dim
    full, windowed = build(window_pattern="L"), build(window_pattern="SL", short_window_frac=0.25)
    matmul = sum(p.numel() for p in full.param_groups()["matrix"]) + full.lm_head.weight.numel()
    assert full.flops_per_token_full_attention() == pytest.approx(6 * matmul + 3 * per_layer * SEQ)
    assert windowed.windows == [16, SEQ, SEQ]
    assert windowed.flops_per_token_full_attention() == pytest.approx(6 * matmul + per_layer * (16 + 2 * SEQ))
    assert full.flops_per_token() < full.flops_per_token_full_attention()


def test_metrics_report_mfu_under_both_conventions():
    from training.loop import LoopResult
    from training.metrics import training_metrics

    metrics = training_metrics(LoopResult(steps=10, training_seconds=2.0, final_loss=3.0), tokens_per_step=1000,
                               flops_per_token=1e9, flops_per_token_full_attention=1.2e9, peak_flops=1e13,
                               peak_memory_bytes=0, num_params=1, warmup_seconds=0.0, started=0.0, backend="cuda",
                               device_name="x")
    assert metrics["mfu_percent"] == pytest.approx(100 * 1e9 * 5000 / 1e13)
    assert metrics["mfu_percent_full_attention"] == pytest.approx(100 * 1.2e9 * 5000 / 1e13)
