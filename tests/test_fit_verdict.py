"""training/fit.py's verdict on a block (run, lowered, skip) at the memory thresholds, the steps a budget buys, the
offline proposers' refusal of blocks that would not fit, and the headroom Claude's prompt shows."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import yaml

from common.paths import PROJECT_ROOT
from research.proposing.prompt import build_prompt
from research.proposing.proposers.base import ProposalContext
from research.proposing.proposers.random_proposer import RandomProposer
from research.proposing.space import load_space
from training.fit import RESERVE_BYTES, DeviceFacts, FitCheck, budget_steps, measured_flops_per_second

SEQ_LEN, VOCAB = 128, 512
SPACE = load_space(PROJECT_ROOT / "conf" / "space.yaml")


def tiny_block(**batch) -> dict:
    hparams = yaml.safe_load((PROJECT_ROOT / "conf" / "hparams" / "default.yaml").read_text())
    hparams["model"].update(depth=2, aspect_ratio=32, head_dim=32)
    hparams["batch"].update({"device_batch_size": 8, "total_batch_tokens": 2048, **batch})
    return hparams


def check(memory_bytes: int, budget=None) -> FitCheck:
    return FitCheck(SEQ_LEN, VOCAB, budget or {"kind": "steps", "steps": 30}, DeviceFacts(memory_bytes=memory_bytes))


def need(block: dict) -> int:
    return check(10**12).predict(block).need_bytes


def test_a_block_runs_at_exactly_its_need_and_is_lowered_one_byte_below():
    block = tiny_block()
    at_need = check(need(block)).decide(block)
    assert at_need.status == "run" and at_need.hparams == block and at_need.note == ""
    below = check(need(block) - 1).decide(block)
    assert below.status == "lowered"
    # The largest device batch that still divides the 16 sequences per step and fits: 4 (8 does not fit).
    assert below.hparams["batch"]["device_batch_size"] == 4
    assert below.hparams["batch"]["total_batch_tokens"] == block["batch"]["total_batch_tokens"]
    assert "device_batch_size lowered from 8 to 4" in below.note and "same total_batch_tokens" in below.note
    assert below.prediction.accum == 4 and below.original.device_batch == 8


def test_a_block_that_does_not_fit_even_one_sequence_per_pass_is_skipped_with_one_sentence():
    block = tiny_block()
    smallest = need(tiny_block(device_batch_size=1))
    fit = check(smallest - 1).decide(block)
    assert fit.status == "skip" and fit.hparams == block
    gb = f"{need(block) / 1e9:.3g} GB of {(smallest - 1) / 1e9:.3g} GB"
    assert fit.note.startswith(f"not trained: predicted {gb}") and fit.note.count(". ") == 0
    assert check(smallest).decide(block).status == "lowered"  # at exactly its need, one sequence per pass fits
    fields = fit.ledger_fields()
    assert fields["fit"] == fit.note and fields["predicted_peak_gb"] == pytest.approx(fit.original.peak_gb)


def test_the_prediction_grows_with_what_the_device_holds():
    small, wide = check(10**12).predict(tiny_block()), check(10**12).predict(
        {**tiny_block(), "model": {**tiny_block()["model"], "aspect_ratio": 64}})
    bigger_batch = check(10**12).predict(tiny_block(device_batch_size=16))
    assert small.peak_bytes < wide.peak_bytes and small.peak_bytes < bigger_batch.peak_bytes
    assert small.need_bytes == int(small.peak_bytes * 1.1) + RESERVE_BYTES


def test_the_steps_a_budget_buys():
    assert budget_steps({"kind": "steps", "steps": 7}, 1e6, 2048, None) == (7, None)
    # A FLOP budget: training.loop.Budget.resolve's rule, at its edge (exactly 3 steps, one FLOP short of 3).
    assert budget_steps({"kind": "flops", "flops": 3 * 1e6 * 2048}, 1e6, 2048, None)[0] == 3
    assert budget_steps({"kind": "flops", "flops": 3 * 1e6 * 2048 - 1}, 1e6, 2048, None)[0] == 2
    assert budget_steps({"kind": "time", "seconds": 300}, 1e6, 2048, None) == (None, None)
    steps, seconds = budget_steps({"kind": "time", "seconds": 300}, 1e6, 2048, 2048e6)  # 1 s per step
    assert (steps, seconds) == (300, 1.0)
    rows = [{"mfu": 40.0}, {"mfu": None}, {"mfu": 50.0}, {"mfu": 45.0}]
    assert measured_flops_per_second(rows, 1e15) == pytest.approx(0.45e15)
    assert measured_flops_per_second(rows, None) is None and measured_flops_per_second([], 1e15) is None


def test_the_offline_proposers_do_not_propose_a_block_that_would_not_fit():
    block = tiny_block()
    fit = check(need(block))  # the current block fits exactly: any change that grows it does not
    context = ProposalContext(hparams=copy.deepcopy(block), space=SPACE, seq_len=SEQ_LEN, fit=fit)
    proposer = RandomProposer({"name": "random", "seed": 3})
    for seed in range(12):
        change = proposer.propose(replace(context, seed=seed)).change
        from research.proposing.space import apply_change

        assert fit.fits(apply_change(block, change)), change.text
    # Without the check the same draws include growing changes (the refusal above is not vacuous).
    grown = [proposer.propose(replace(context, seed=seed, fit=None)).change for seed in range(12)]
    assert any(not fit.fits(apply_change(block, change)) for change in grown)


def test_claudes_prompt_says_which_keys_would_not_fit_in_which_direction():
    block = tiny_block()
    # Headroom of 5% of the block's tensors: doubling its depth, width, MLP or device batch does not fit.
    fit = check(need(block) + check(10**12).predict(block).peak_bytes // 20)
    context = ProposalContext(hparams=block, space=SPACE, seq_len=SEQ_LEN, fit=fit, budget="steps budget: 30 steps")
    _, text = build_prompt(context)
    section = text.split("## Device fit")[1].split("## History")[0]
    assert "this block: predicted" in section and "headroom" in section and "30 optimizer steps" in section
    assert "- model.depth raised to 4 would not fit" in section
    assert "- model.aspect_ratio raised to 64 would not fit" in section
    assert "- model.mlp_ratio raised to 8 would not fit" in section
    assert "- batch.device_batch_size raised to 16 would not fit" in section
    # Plenty of memory: no refusals; no check: no section.
    _, roomy = build_prompt(replace(context, fit=check(10**12)))
    assert "would not fit" not in roomy and "## Device fit" in roomy
    assert "## Device fit" not in build_prompt(replace(context, fit=None))[1]
