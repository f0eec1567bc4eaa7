"""The local proposer under the flow's real noise: paired deltas, key priors, and batch steps that stay valid."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from research.errors import InvalidProposal, ProposerFatal
from research.proposing.proposers import ProposalContext
from research.judging.verdict import paired_deltas
from research.proposing.proposers.local import LocalProposer
from research.proposing.space import Space, load_space

ROOT = Path(__file__).resolve().parents[1]
SPACE_YAML = yaml.safe_load((ROOT / "conf/space.yaml").read_text())
SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
LOCAL = yaml.safe_load((ROOT / "conf/proposer/local.yaml").read_text())


def baselines(*values: float, first_seed: int = 42) -> list[dict]:
    return [{"exp": i, "status": "baseline", "val_bpb": v, "seed": first_seed + i} for i, v in enumerate(values)]


def only(key: str) -> Space:
    """A search space trimmed to one key of the real one."""
    return Space.from_dict({"params": {key: SPACE_YAML["params"][key]}, "constraints": SPACE_YAML["constraints"]})


def test_paired_deltas_follow_the_same_seed_baseline_then_each_keep():
    history = baselines(2.00, 2.04) + [
        {"exp": 2, "status": "discard", "val_bpb": 2.01, "seed": 42},
        {"exp": 3, "status": "keep", "val_bpb": 1.95, "seed": 42},
        {"exp": 4, "status": "crash", "val_bpb": None, "seed": 42},
        {"exp": 5, "status": "discard", "val_bpb": 1.96, "seed": 42},
    ]
    deltas = paired_deltas(history, 42)
    assert deltas.keys() == {2, 3, 5}
    assert deltas[2] == pytest.approx(0.01) and deltas[3] == pytest.approx(-0.05) and deltas[5] == pytest.approx(0.01)


def test_no_baseline_with_the_base_seed_means_no_paired_deltas():
    history = baselines(2.00, 2.04, first_seed=7) + [{"exp": 2, "status": "discard", "val_bpb": 2.01, "seed": 42}]
    assert paired_deltas(history, 42) == {}


def test_a_lucky_base_seed_does_not_look_like_progress():
    """Seed 42 sits 0.03 under the baselines' mean; a change that lands between the two made things worse."""
    space = only("optim.matrix_lr")
    tried_down = {"exp": 4, "key": "optim.matrix_lr", "value": 0.0253449, "previous": 0.04, "status": "discard",
                  "val_bpb": 1.985, "delta": 1.985 - 1.99, "seed": 42}
    history = baselines(1.96, 2.00, 2.00, 2.00) + [tried_down]  # mean 1.99, sigma 0.02: +0.025 is 1.25 sigma
    ctx = ProposalContext(hparams=HPARAMS, space=space, history=history, best_val_bpb=1.99, noise_sigma=0.02,
                          seq_len=2048, seed=5, tried={("optim.matrix_lr", "0.0253449")})
    assert LocalProposer(LOCAL).propose(ctx).change.value > 0.04  # judged worse than seed 42's run: turn around

    without_seeds = [{k: v for k, v in row.items() if k != "seed"} for row in history]
    ctx.history = without_seeds  # against the mean alone the same row looks like progress: keep going down
    assert LocalProposer(LOCAL).propose(ctx).change.value < 0.0253449


def test_the_highest_prior_is_proposed_first():
    ctx = ProposalContext(hparams=HPARAMS, space=SPACE, seq_len=2048, seed=3)
    proposer = LocalProposer({**LOCAL, "priors": {"optim.weight_decay": 5.0}})
    assert proposer.propose(ctx).change.key == "optim.weight_decay"


def test_a_prior_for_an_unknown_key_stops_with_one_sentence():
    ctx = ProposalContext(hparams=HPARAMS, space=SPACE, seq_len=2048, seed=3)
    with pytest.raises(ProposerFatal, match=r"optim\.matrx_lr; fix conf/proposer/local\.yaml"):
        LocalProposer({**LOCAL, "priors": {"optim.matrx_lr": 1.0}}).propose(ctx)


def test_a_prior_for_a_key_outside_a_trimmed_space_is_fine():
    ctx = ProposalContext(hparams=HPARAMS, space=only("model.depth"), seq_len=2048, seed=3)
    assert LocalProposer(LOCAL).propose(ctx).change.key == "model.depth"


def test_batch_steps_are_powers_of_two_that_fit_the_micro_batch():
    """4096 tokens x 2.05 rounds to 8414, which no micro-batch of 16 x 256 divides; the old code fell through to
    the bound, 8,388,608 tokens (2,048 micro-batches per step), which never finished a step on the cpu preset."""
    h = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
    h["batch"].update(total_batch_tokens=4096, device_batch_size=16)
    for seed in range(6):
        ctx = ProposalContext(hparams=h, space=only("batch.total_batch_tokens"), seq_len=256, seed=seed)
        value = LocalProposer(LOCAL).propose(ctx).change.value
        assert value == 8192  # 2048 is below one micro-batch, so up is the only valid first step
        assert math.log2(value).is_integer()


def test_a_worse_direction_is_not_pushed_further_when_the_other_side_is_invalid():
    """8192 tokens came out worse and 2048 is below one micro-batch: the key has nothing left to offer (the old
    code mirrored the loss onto the invalid side, kept the key on top, and went on to 16384, 65536, ...)."""
    h = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
    h["batch"].update(total_batch_tokens=4096, device_batch_size=16)
    history = baselines(2.03, 2.04) + [{"exp": 2, "key": "batch.total_batch_tokens", "value": 8192,
                                        "previous": 4096, "status": "discard", "val_bpb": 2.09, "delta": 0.055,
                                        "seed": 42}]
    ctx = ProposalContext(hparams=h, space=only("batch.total_batch_tokens"), history=history, noise_sigma=0.013,
                          seq_len=256, seed=3, tried={("batch.total_batch_tokens", "8192")})
    with pytest.raises(InvalidProposal):
        LocalProposer(LOCAL).propose(ctx)


def test_a_step_lost_inside_the_noise_is_followed_by_a_bigger_one():
    """final_lr_frac 0 -> 0.04 came out 0.011 worse with sigma 0.021: inconclusive, so the proposer steps further up
    (below 0 is out of bounds; turning back would drop the key that later paid 0.03 for random)."""
    history = baselines(2.0085, 2.0482, 2.0456, 2.0135) + [
        {"exp": 4, "key": "schedule.final_lr_frac", "value": 0.04, "previous": 0.0, "status": "discard",
         "val_bpb": 2.0196, "delta": 2.0196 - 2.029, "seed": 42}]
    ctx = ProposalContext(hparams=HPARAMS, space=only("schedule.final_lr_frac"), history=history, noise_sigma=0.021,
                          seq_len=2048, seed=3, tried={("schedule.final_lr_frac", "0.04")})
    assert LocalProposer(LOCAL).propose(ctx).change.value > 0.04
    with pytest.raises(InvalidProposal):  # with every worse step taken at face value, the key is spent
        LocalProposer({**LOCAL, "inconclusive": 0.0}).propose(ctx)
