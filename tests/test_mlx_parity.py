"""The MLX port computes what the torch model computes, and its optimizer steps like the torch one."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.training_helpers import MLX_MISSING

mx = pytest.importorskip("mlx.core", reason=MLX_MISSING)
nn = pytest.importorskip("mlx.nn", reason=MLX_MISSING)

from models.attention import attention as torch_attention  # noqa: E402
from models.gpt import GPT, GPTConfig  # noqa: E402
from models.gpt_mlx import GPTMLX, attention as mlx_attention  # noqa: E402
from optim import build_optimizer  # noqa: E402
from optim.muon_mlx import MuonAdamWMLX  # noqa: E402
from optim.schedule import apply_schedule  # noqa: E402

DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/hparams/default.yaml").read_text())
VOCAB, SEQ = 61, 48


def pair(seed=0, **overrides):
    model = dict(DEFAULTS["model"], depth=3, aspect_ratio=32, head_dim=16)
    model.update(overrides)
    config = GPTConfig.from_hparams(model, VOCAB, SEQ)
    torch.manual_seed(seed)
    torch_model = GPT(config)
    with torch.no_grad():  # non-trivial weights everywhere, so every path is exercised
        for p in torch_model.parameters():
            p.normal_(0.0, 0.1)
    mlx_model = GPTMLX(config).load_torch_state_dict(torch_model.state_dict())
    return torch_model, mlx_model


def ids(seed=0, B=2):
    return np.random.default_rng(seed).integers(0, VOCAB, (B, SEQ))


@pytest.mark.parametrize("overrides", [
    {},
    {"activation": "swiglu", "kv_head_ratio": 2, "aspect_ratio": 64},
    {"activation": "gelu", "window_pattern": "L", "value_residual": False, "qk_norm": False},
    {"window_pattern": "S", "short_window_frac": 0.1, "logit_softcap": 0.0, "rope_base": 500.0},
])
def test_logits_match_torch(overrides):
    torch_model, mlx_model = pair(**overrides)
    x = ids()
    expected = torch_model(torch.from_numpy(x)).detach().numpy()
    got = np.array(mlx_model(mx.array(x)))
    # fp32 on both sides; differences come from summation order, amplified by softmax without qk_norm
    np.testing.assert_allclose(got, expected, atol=5e-4, rtol=1e-4)


def test_loss_matches_torch():
    torch_model, mlx_model = pair()
    x, y = ids(0), ids(1)
    y[0, :5] = -1
    expected = torch_model(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert mlx_model.loss(mx.array(x), mx.array(y)).item() == pytest.approx(expected, rel=1e-5)
    per_token = np.array(mlx_model.loss(mx.array(x), mx.array(y), reduction="none"))
    assert per_token.shape == (2, SEQ) and (per_token[0, :5] == 0).all()


def test_windowed_attention_matches_torch():
    g = np.random.default_rng(0)
    q, k, v = g.normal(size=(1, 4, 40, 8)), g.normal(size=(1, 2, 40, 8)), g.normal(size=(1, 2, 40, 8))
    for window in (1, 7, None):
        expected = torch_attention(*(torch.tensor(a, dtype=torch.float32) for a in (q, k, v)), window, "naive").numpy()
        got = np.array(mlx_attention(*(mx.array(a.astype(np.float32)) for a in (q, k, v)), window))
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_param_groups_match_torch_names():
    torch_model, mlx_model = pair(activation="swiglu")
    names = {id(p): n for n, p in torch_model.named_parameters()}
    torch_groups = {k: sorted(names[id(p)] for p in ps) for k, ps in torch_model.param_groups().items()}
    assert {k: sorted(v) for k, v in mlx_model.param_groups().items()} == torch_groups


def test_optimizer_step_matches_torch_and_training_reduces_loss():
    torch_model, mlx_model = pair()
    x, y = ids(0), np.roll(ids(0), -1, axis=1)
    torch_opt = build_optimizer(torch_model, DEFAULTS["optim"])
    torch_opt.ortho_dtype = torch.float32  # compare the algorithms, not bf16 rounding
    mlx_opt = MuonAdamWMLX(mlx_model, DEFAULTS["optim"], ortho_dtype=mx.float32)
    assert [(g["name"], g["lr"]) for g in torch_opt.param_groups] == [(g["name"], g["lr"]) for g in mlx_opt.param_groups]

    loss_and_grad = nn.value_and_grad(mlx_model, mlx_model.loss)
    # Three steps through the schedule: LR warmdown and weight decay fading with progress, NorMuon's state
    # carried between steps, cautious decay; the x0 group with its own betas.
    for progress in (0.0, 0.6, 0.9):
        for opt in (torch_opt, mlx_opt):
            apply_schedule(opt.param_groups, progress, DEFAULTS["schedule"])
        torch_model.zero_grad(set_to_none=True)
        torch_model(torch.from_numpy(x), torch.from_numpy(y)).backward()
        torch_opt.step()
        loss, grads = loss_and_grad(mx.array(x), mx.array(y))
        mlx_opt.update(mlx_model, grads)
        mx.eval(mlx_model.parameters(), mlx_opt.state)
        first = loss if progress == 0.0 else first
        np.testing.assert_allclose(np.array(mlx_model(mx.array(x))), torch_model(torch.from_numpy(x)).detach().numpy(),
                                   atol=2e-3, rtol=1e-3)
    assert [g["weight_decay"] for g in torch_opt.param_groups] == pytest.approx([g["weight_decay"] for g in mlx_opt.param_groups])

    for _ in range(6):
        loss, grads = loss_and_grad(mx.array(x), mx.array(y))
        mlx_opt.update(mlx_model, grads)
        mx.eval(mlx_model.parameters(), mlx_opt.state)
    assert loss.item() < first.item()
    assert all(g["step"] == 9 for g in mlx_opt.param_groups)
