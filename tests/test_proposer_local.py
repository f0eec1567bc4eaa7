"""The local (bandit) and random proposers: validity, no repeats, determinism, and local beats random."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from research.errors import InvalidProposal, ProposerFatal
from research.proposing.proposers import ProposalContext, make_proposer
from research.proposing.proposers.local import LocalProposer
from research.proposing.proposers.random_proposer import RandomProposer
from research.proposing.space import Space, apply_change, load_space
from research.proposing.validation import validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import proposer_bench  # noqa: E402

SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
LOCAL = yaml.safe_load((ROOT / "conf/proposer/local.yaml").read_text())
RANDOM = yaml.safe_load((ROOT / "conf/proposer/random.yaml").read_text())


def simulate(cfg, seed, n, sigma=0.003):
    """A sequential loop on the bench's synthetic objective; returns the changes (with their base) in order."""
    import numpy as np

    noise = np.random.default_rng([seed, 1])
    proposer = make_proposer(cfg)
    current, best, base = HPARAMS, proposer_bench.true_val_bpb(HPARAMS), "b0"
    history, tried, out = [], set(), []
    for exp in range(1, n + 1):
        ctx = ProposalContext(hparams=current, space=SPACE, history=history, best_val_bpb=best, noise_sigma=sigma,
                              tried=tried, seq_len=2048, seed=seed, base_sha=base)
        change = proposer.propose(ctx).change
        validate({"key": change.key, "value": change.value, "description": "x", "reasoning": "y"}, current, SPACE,
                 tried, 2048, base_sha=base)  # still valid against the same context
        out.append((base, change.key, change.canonical))
        candidate = apply_change(current, change)
        measured = proposer_bench.true_val_bpb(candidate) + noise.normal(0, sigma)
        delta = measured - best
        status = "keep" if delta < -2 * sigma else "discard"
        history.append({"exp": exp, "key": change.key, "value": change.value, "previous": change.previous,
                        "description": change.description, "val_bpb": measured, "delta": delta, "status": status,
                        "error": "", "baseline_sha": base})
        tried.add((base, change.key, change.canonical))
        if status == "keep":
            current, best, base = candidate, measured, f"b{exp}"
    return out


@pytest.mark.parametrize("cfg", [LOCAL, RANDOM], ids=["local", "random"])
def test_never_repeats_a_tried_change(cfg):
    for seed in range(3):
        changes = simulate(cfg, seed, 40)
        assert len(changes) == len(set(changes))


@pytest.mark.parametrize("cfg", [LOCAL, RANDOM], ids=["local", "random"])
def test_deterministic_for_a_seed(cfg):
    assert simulate(cfg, 5, 12) == simulate(cfg, 5, 12)
    assert simulate(cfg, 5, 12) != simulate(cfg, 6, 12)


def test_same_context_same_proposal_even_from_a_fresh_proposer():
    ctx = ProposalContext(hparams=HPARAMS, space=SPACE, seq_len=2048, seed=3)
    assert LocalProposer(LOCAL).propose(ctx).change == LocalProposer(LOCAL).propose(ctx).change


def test_local_beats_random_on_the_synthetic_objective():
    # Without the priors: they point at the keys this objective was built on, and the gate is for the search logic.
    results = proposer_bench.compare(seeds=200, proposals=16, local_overrides={"priors": {}})  # ~2.1x
    assert results["local"]["mean_gain"] >= 1.5 * results["random"]["mean_gain"] > 0


def test_in_flight_changes_are_avoided():
    ctx = ProposalContext(hparams=HPARAMS, space=SPACE, seq_len=2048, seed=3)
    first = LocalProposer(LOCAL).propose(ctx).change
    ctx2 = ProposalContext(hparams=HPARAMS, space=SPACE, seq_len=2048, seed=3, in_flight=[first])
    second = LocalProposer(LOCAL).propose(ctx2).change
    assert second.key != first.key


def test_keep_continues_in_the_same_direction_with_a_larger_step():
    h = apply_change(HPARAMS, validate({"key": "optim.matrix_lr", "value": 0.06, "description": "x",
                                        "reasoning": "y"}, HPARAMS, SPACE))
    history = [{"exp": 1, "key": "optim.matrix_lr", "value": 0.06, "previous": 0.04, "delta": -0.02,
                "status": "keep", "val_bpb": 0.98, "description": "", "error": ""}]
    ctx = ProposalContext(hparams=h, space=SPACE, history=history, noise_sigma=0.002, seq_len=2048, seed=0)
    change = LocalProposer(LOCAL).propose(ctx).change
    assert change.key == "optim.matrix_lr"
    assert change.value > 0.06 * 1.5 * 0.99  # same direction, step grown from x1.5


def test_a_bad_discard_flips_the_direction():
    history = [{"exp": 1, "key": "model.depth", "value": 4, "previous": 8, "delta": 0.03, "status": "discard",
                "val_bpb": 1.03, "description": "", "error": ""}]
    ctx = ProposalContext(hparams=HPARAMS, space=SPACE, history=history, noise_sigma=0.002, seq_len=2048, seed=0)
    change = LocalProposer(LOCAL).propose(ctx).change
    assert change.key == "model.depth" and change.value > 8


def test_stagnation_widens():
    history = [{"exp": i, "key": "model.qk_norm", "value": False, "previous": True, "delta": 0.001,
                "status": "discard", "val_bpb": 1.0, "description": "", "error": ""} for i in range(1, 11)]
    ctx = ProposalContext(hparams=HPARAMS, space=SPACE, history=history, noise_sigma=0.002, seq_len=2048, seed=0,
                          tried={("model.qk_norm", "false")})
    change = LocalProposer({**LOCAL, "stagnation_after": 5}).propose(ctx).change
    assert "widened x4" in change.reasoning


@pytest.mark.parametrize("cls,cfg", [(LocalProposer, LOCAL), (RandomProposer, RANDOM)], ids=["local", "random"])
def test_exhausted_space_raises_invalid_proposal(cls, cfg):
    space = Space.from_dict({"params": {"model.qk_norm": {"type": "bool", "description": "x"}}})
    ctx = ProposalContext(hparams=HPARAMS, space=space, seed=0, tried={("model.qk_norm", "false")})
    with pytest.raises(InvalidProposal) as info:
        cls({**cfg, "max_draws": 20}).propose(ctx)
    assert info.value.attempts == 1 and info.value.cost_usd == 0


def test_constraints_respected_on_a_cpu_block():
    h = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
    h["model"].update(depth=4, aspect_ratio=32, head_dim=32)
    h["batch"].update(total_batch_tokens=4096, device_batch_size=16)
    for cfg in (LOCAL, RANDOM):
        for seed in range(10):
            ctx = ProposalContext(hparams=h, space=SPACE, seq_len=256, seed=seed)
            change = make_proposer(cfg).propose(ctx).change
            new = apply_change(h, change)
            assert new["batch"]["total_batch_tokens"] % (new["batch"]["device_batch_size"] * 256) == 0


def test_make_proposer_names():
    assert isinstance(make_proposer(LOCAL), LocalProposer)
    assert isinstance(make_proposer(RANDOM), RandomProposer)
    with pytest.raises(ProposerFatal, match="Unknown proposer"):
        make_proposer({"name": "gpt"})
