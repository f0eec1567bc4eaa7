"""MuonAdamW: groups and LRs from the block, orthogonal updates, momentum warmup, weight decay, learning."""

from pathlib import Path

import pytest
import torch
import yaml

from models.gpt import GPT, GPTConfig
from optim import REFERENCE_WIDTH, build_optimizer
from optim.muon import MuonAdamW, ns_coefficients, orthogonalize

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
        else:
            assert g["betas"] == (hp["adam_beta1"], hp["adam_beta2"])
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
    # cautious: no decay where the update pushes the weight away from zero
    C = torch.nn.Parameter(torch.ones(4, 4))
    opt = MuonAdamW([dict(group, params=[C], cautious=True)])
    C.grad = -torch.eye(4)  # the update grows the diagonal and is zero elsewhere: nothing points towards zero
    opt.step()
    assert C[0, 1].item() == pytest.approx(1.0) and C[0, 0].item() > 1.05


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
