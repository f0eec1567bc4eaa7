"""MuonAdamW: groups and LRs from the block, orthogonal updates, momentum warmup, weight decay, learning.

The reference trainer's rules (NorMuon, cautious weight decay, weight decay x (1 - progress), the x0 betas)
are each checked against a float64 computation written here from the math, not from optim/muon.py.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from models.gpt import GPT, GPTConfig
from optim import REFERENCE_WIDTH, build_optimizer
from optim.muon import MuonAdamW, normuon_scale, ns_coefficients, orthogonalize
from optim.schedule import apply_schedule, lr_multiplier

DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/hparams/default.yaml").read_text())


def tiny_model(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    model = dict(DEFAULTS["model"], depth=2, aspect_ratio=32, head_dim=16)
    model.update(overrides)
    return GPT(GPTConfig.from_hparams(model, 64, 32))


class Recording(dict):
    def __init__(self, *a):
        super().__init__(*a)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_every_optim_key_of_the_block_is_used():
    hp = Recording(DEFAULTS["optim"])
    build_optimizer(tiny_model(), hp)
    assert hp.read == set(DEFAULTS["optim"])


def test_groups_cover_every_parameter_with_their_lrs():
    model = tiny_model()
    hp = DEFAULTS["optim"]
    opt = build_optimizer(model, hp)
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(model.parameters()))
    scale = (model.config.n_embd / REFERENCE_WIDTH) ** -0.5
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["embedding"]["lr"] == pytest.approx(hp["embedding_lr"] * scale)
    assert by_name["value_embedding"]["lr"] == pytest.approx(hp["embedding_lr"] * scale)
    assert by_name["unembedding"]["lr"] == pytest.approx(hp["unembedding_lr"] * scale)
    assert by_name["x0"]["lr"] == hp["x0_lr"] and by_name["resid"]["lr"] == hp["resid_lr"]
    for g in opt.param_groups:
        assert g["initial_lr"] == g["lr"]
        if g["kind"] == "muon":
            assert g["lr"] == hp["matrix_lr"] and g["weight_decay"] == hp["weight_decay"] and g["ns_steps"] == hp["ns_steps"]
            assert len({tuple(p.shape) for p in g["params"]}) == 1  # one shape per group: batched orthogonalisation
        elif g["name"] == "x0":
            assert g["betas"] == (hp["x0_adam_beta1"], hp["adam_beta2"]) == (0.96, 0.95)  # the reference's
        else:
            assert g["betas"] == (hp["adam_beta1"], hp["adam_beta2"]) == (0.8, 0.95)
    assert "value_embedding" not in {g["name"] for g in build_optimizer(tiny_model(value_residual=False), hp).param_groups}


@pytest.mark.parametrize("shape", [(64, 64), (48, 192), (192, 48)])
@pytest.mark.parametrize("ns_steps,low", [(3, 0.35), (5, 0.8), (8, 0.95)])
def test_orthogonalize_gives_singular_values_near_one(shape, ns_steps, low):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(3, *shape, generator=g) @ torch.diag_embed(torch.linspace(0.5, 4.0, shape[1]))  # uneven spectrum
    s = torch.linalg.svdvals(orthogonalize(G, ns_steps).float())
    k = min(shape)
    bulk = s[:, : int(0.9 * k)]  # a square random matrix has a few tiny singular values that no 5-step iteration lifts
    assert bulk.min() > low and s.max() < 1.25  # more steps, tighter band
    assert orthogonalize(G, ns_steps).shape == G.shape


def test_coefficient_schedule():
    assert len(ns_coefficients(1)) == 1 and len(ns_coefficients(10)) == 10
    assert ns_coefficients(7)[-1] == (1.5, -0.5, 0.0)


def test_muon_update_is_orthogonal_and_lr_scaled():
    W = torch.nn.Parameter(torch.zeros(32, 96))
    opt = MuonAdamW([dict(name="m", kind="muon", params=[W], lr=0.1, weight_decay=0.0, final_momentum=0.95,
                          momentum_warmup_steps=0, ns_steps=5, cautious=False)])
    W.grad = torch.randn(32, 96)
    opt.step()
    s = torch.linalg.svdvals(W.detach() / -0.1)
    assert s.min() > 0.7 and s.max() < 1.25  # lr * max(1, 32/96)^0.5 = lr for a wide matrix
    T = torch.nn.Parameter(torch.zeros(96, 32))
    opt = MuonAdamW([dict(name="t", kind="muon", params=[T], lr=0.1, weight_decay=0.0, final_momentum=0.95,
                          momentum_warmup_steps=0, ns_steps=5, cautious=False)])
    T.grad = torch.randn(96, 32)
    opt.step()
    assert torch.linalg.svdvals(T.detach()).mean() == pytest.approx(0.1 * 3**0.5, rel=0.2)  # tall: * sqrt(rows/cols)


def test_momentum_warmup_and_weight_decay():
    W = torch.nn.Parameter(torch.ones(8, 8))
    group = dict(name="m", kind="muon", params=[W], lr=0.1, weight_decay=0.5, final_momentum=0.95,
                 momentum_warmup_steps=10, ns_steps=5, cautious=False)
    opt = MuonAdamW([group])
    W.grad = torch.zeros(8, 8)
    opt.step()
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.85)
    torch.testing.assert_close(W.detach(), torch.full((8, 8), 1 - 0.1 * 0.5))  # zero update: only decay
    for _ in range(10):
        W.grad = torch.zeros(8, 8)
        opt.step()
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    # cautious: no decay where the update pushes the weight away from zero; a zero update entry agrees
    # with every sign (update x weight >= 0), so it is decayed
    C = torch.nn.Parameter(torch.ones(4, 4))
    opt = MuonAdamW([dict(group, params=[C], cautious=True)])
    C.grad = -torch.eye(4)  # the update grows the diagonal and is zero elsewhere
    opt.step()
    assert C[0, 1].item() == pytest.approx(1 - 0.1 * 0.5) and C[0, 0].item() > 1.05


def test_rejects_bad_groups():
    with pytest.raises(ValueError, match="one shape"):
        MuonAdamW([dict(name="m", kind="muon", params=[torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2, 3))], lr=0.1)])
    with pytest.raises(ValueError, match="kind"):
        MuonAdamW([dict(name="x", params=[torch.nn.Parameter(torch.zeros(2))], lr=0.1)])


def test_a_few_steps_reduce_the_loss_and_state_round_trips():
    model = tiny_model()
    opt = build_optimizer(model, DEFAULTS["optim"])
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 64, (4, 32), generator=g)
    y = torch.roll(x, -1, dims=1)
    losses = []
    for _ in range(12):
        loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    clone = build_optimizer(tiny_model(), DEFAULTS["optim"])
    clone.load_state_dict(opt.state_dict())
    assert [g["step"] for g in clone.param_groups] == [12] * len(opt.param_groups)


def numpy_normuon(u: np.ndarray, v: np.ndarray, beta2: float) -> tuple[np.ndarray, np.ndarray]:
    """NorMuon from its definition, one matrix, float64: the mean square of each row (of each column when
    the matrix is wider than tall) feeds an EMA; rows are divided by its root; the Frobenius norm is restored."""
    rows, cols = u.shape
    out, v = u.copy(), v.copy()
    if rows >= cols:
        for i in range(rows):
            v[i, 0] = beta2 * v[i, 0] + (1 - beta2) * np.mean(u[i, :] ** 2)
            out[i, :] = u[i, :] / np.sqrt(v[i, 0])
    else:
        for j in range(cols):
            v[0, j] = beta2 * v[0, j] + (1 - beta2) * np.mean(u[:, j] ** 2)
            out[:, j] = u[:, j] / np.sqrt(v[0, j])
    return out * np.linalg.norm(u) / np.linalg.norm(out), v


@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (4, 4)])
def test_normuon_matches_its_definition_over_three_steps(shape):
    g = np.random.default_rng(0)
    state_shape = (shape[0], 1) if shape[0] >= shape[1] else (1, shape[1])
    v_ref, v = np.zeros((2, *state_shape)), torch.zeros((2, *state_shape), dtype=torch.float64)
    for _ in range(3):
        u = g.normal(size=(2, *shape)) * np.linspace(0.2, 3.0, shape[0])[:, None]  # uneven rows
        got = normuon_scale(torch.from_numpy(u), v, 0.95).numpy()
        for k in range(2):
            expected, v_ref[k] = numpy_normuon(u[k], v_ref[k], 0.95)
            np.testing.assert_allclose(got[k], expected, rtol=1e-10)
            assert np.linalg.norm(got[k]) == pytest.approx(np.linalg.norm(u[k]))
        np.testing.assert_allclose(v.numpy(), v_ref, rtol=1e-10)


def numpy_muon_steps(p, grads, progresses, *, lr, wd, beta2, momentum, schedule):
    """Three Muon steps from the rules, float64: Nesterov momentum, orthogonalisation (the iteration under
    test elsewhere, borrowed in float64), NorMuon, LR x max(1, rows/cols)^0.5, cautious decay with the
    weight decay fading as 1 - progress: p -= lr_t * (u + wd_t * p * [u * p >= 0])."""
    buf = np.zeros_like(p)
    v = np.zeros((p.shape[0], 1) if p.shape[0] >= p.shape[1] else (1, p.shape[1]))
    for grad, progress in zip(grads, progresses):
        buf = momentum * buf + (1 - momentum) * grad
        nesterov = (1 - momentum) * grad + momentum * buf
        u = orthogonalize(torch.from_numpy(nesterov)[None], 5, torch.float64)[0].numpy()
        u, v = numpy_normuon(u, v, beta2)
        lr_t = lr * lr_multiplier(progress, **schedule) * max(1.0, p.shape[0] / p.shape[1]) ** 0.5
        wd_t = wd * (1 - progress)
        p = p - lr_t * (u + wd_t * p * (u * p >= 0))
    return p


@pytest.mark.parametrize("shape", [(8, 4), (4, 8)])
def test_muon_step_follows_the_reference_rules(shape):
    g = np.random.default_rng(1)
    p0 = g.normal(size=shape)
    grads = [g.normal(size=shape) for _ in range(3)]
    progresses = [0.0, 0.4, 0.8]
    schedule = dict(warmup_frac=0.0, warmdown_frac=0.5, final_lr_frac=0.0)
    W = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = MuonAdamW([dict(name="m", kind="muon", params=[W], lr=0.05, weight_decay=0.3, weight_decay_to_zero=True,
                          cautious=True, normuon_beta2=0.95, final_momentum=0.9, momentum_warmup_steps=0,
                          ns_steps=5)], ortho_dtype=torch.float64)
    for grad, progress in zip(grads, progresses):
        apply_schedule(opt.param_groups, progress, schedule)
        W.grad = torch.from_numpy(grad)
        opt.step()
    expected = numpy_muon_steps(p0, grads, progresses, lr=0.05, wd=0.3, beta2=0.95, momentum=0.9, schedule=schedule)
    np.testing.assert_allclose(W.detach().numpy(), expected, rtol=1e-9, atol=1e-12)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(0.3 * 0.2)


def test_schedule_sets_lr_everywhere_and_fades_only_marked_weight_decay():
    model = tiny_model()
    opt = build_optimizer(model, DEFAULTS["optim"])
    schedule = DEFAULTS["schedule"]
    scale = apply_schedule(opt.param_groups, 0.75, schedule)
    assert scale == pytest.approx(lr_multiplier(0.75, schedule["warmup_frac"], schedule["warmdown_frac"],
                                                schedule["final_lr_frac"]))
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(group["initial_lr"] * scale)
        expected_wd = DEFAULTS["optim"]["weight_decay"] * 0.25 if group["kind"] == "muon" else 0.0
        assert group["weight_decay"] == pytest.approx(expected_wd)
    steady = build_optimizer(model, dict(DEFAULTS["optim"], weight_decay_to_zero=False))
    apply_schedule(steady.param_groups, 0.75, schedule)
    assert {g["weight_decay"] for g in steady.param_groups if g["kind"] == "muon"} == {DEFAULTS["optim"]["weight_decay"]}


def test_reference_defaults_of_the_block():
    optim = DEFAULTS["optim"]
    assert (optim["normuon_beta2"], optim["cautious_weight_decay"], optim["weight_decay_to_zero"],
            optim["x0_adam_beta1"], DEFAULTS["model"]["ve_gate_channels"]) == (0.95, True, True, 0.96, 32)
    groups = build_optimizer(tiny_model(), optim).param_groups
    muon = [g for g in groups if g["kind"] == "muon"]
    assert muon and all(g["cautious"] and g["normuon_beta2"] == 0.95 and g["weight_decay_to_zero"] for g in muon)
    off = build_optimizer(tiny_model(), dict(optim, normuon_beta2=0.0, cautious_weight_decay=False)).param_groups
    assert all(not g["cautious"] and g["normuon_beta2"] == 0.0 for g in off if g["kind"] == "muon")
