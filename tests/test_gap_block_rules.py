"""The block rules' refusals as written sentences. tests/test_hparams_rules.py checks that validation and the trainer
say the same thing, which both get from models.hparams.check_block: a rule broken there is broken on both sides and
still "the same". Here each refusal is compared with the sentence worked out by hand from the block."""
from __future__ import annotations

import copy

import pytest

from research.errors import InvalidProposal
from research.proposing.validation import validate
from tests.test_hparams_rules import HPARAMS, SEQ_LEN, SPACE, proposal, set_key, trainer_accepts

HEADS = "choose depth/aspect_ratio/head_dim/kv_head_ratio so that it does."


@pytest.mark.parametrize("key,value,sentence", [
    # depth 8 x aspect_ratio 64 = width 512, head_dim 128: 4 heads; kv_head_ratio 8 does not divide 4.
    ("model.kv_head_ratio", 8, f"This gives width 512 and 4 heads of 128, which kv_head_ratio 8 does not divide; {HEADS}"),
    # depth 5 x 64 = 320, rounded up to whole heads of 128: width 384, 3 heads; ratio 2 does not divide 3.
    ("model.depth", 5, f"This gives width 384 and 3 heads of 128, which kv_head_ratio 2 does not divide; {HEADS}"),
    # 96 x 256 = 24576 tokens per micro-batch; 16384 is not a multiple of it.
    ("batch.device_batch_size", 96, "batch.total_batch_tokens (16384) is not a multiple of device_batch_size * seq_len "
                                    "(96 * 256 = 24576); pick values that divide evenly."),
    ("batch.device_batch_size", 32, None),  # 32 x 256 = 8192 divides 16384: accepted
    # warmup 0.5 + warmdown 0.6 = 1.1 > 1.
    ("schedule.warmup_frac", 0.5, "schedule.warmup_frac + schedule.warmdown_frac must not exceed 1 (they would be 1.1)."),
    ("schedule.warmup_frac", 0.4, None),  # 0.4 + 0.6 = 1.0: allowed (not more than 1)
])
def test_each_refusal_is_the_sentence_worked_out_from_the_block(key, value, sentence):
    block = copy.deepcopy(HPARAMS)
    block["model"]["kv_head_ratio"] = 2
    block["schedule"]["warmdown_frac"] = 0.6
    block["batch"].update(total_batch_tokens=16384, device_batch_size=16)
    changed = copy.deepcopy(block)
    set_key(changed, key, value)
    assert trainer_accepts(changed, SEQ_LEN) == sentence
    if sentence is None:
        validate(proposal(key, value), block, SPACE, set(), SEQ_LEN)
        return
    with pytest.raises(InvalidProposal) as refused:
        validate(proposal(key, value), block, SPACE, set(), SEQ_LEN)
    assert str(refused.value) == sentence
