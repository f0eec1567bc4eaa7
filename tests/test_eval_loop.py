"""training.evaluate.score_validation: the shared validation sums, and the progress lines the silence watchdog listens to."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.training_helpers import make_experiment
from training import evaluate as eval_loop
from training.run_config import load_run_config


def decoded_bytes(tokenizer, targets: np.ndarray, specials: set[int]) -> int:
    """UTF-8 bytes of the text the targets spell, by decoding each row's runs between special/padding tokens:
    counted from the text itself, not from the byte-length table the evaluation uses."""
    total = 0
    for row in np.asarray(targets).reshape(len(targets), -1):
        run: list[int] = []
        for token in [*row.tolist(), -1]:
            if token >= 0 and token not in specials:
                run.append(token)
                continue
            if run:
                text = tokenizer.decode(run)
                # A run cut inside a multi-byte character would decode to U+FFFD and be miscounted.
                assert "\ufffd" not in text, "a target run split a character; pick runs on character boundaries"
                total += len(text.encode("utf-8"))
            run = []
    return total


def test_constant_loss_scores_as_loss_per_byte_and_reports_progress(tmp_path, tiny_dataset, monkeypatch, capsys):
    from tokenizers import Tokenizer

    cfg = load_run_config(make_experiment(tmp_path, tiny_dataset))
    tokenizer = Tokenizer.from_file(str(tiny_dataset["tokenizer_dir"] / "tokenizer.json"))
    specials = set(tokenizer.get_added_tokens_decoder())
    loss = 3.0
    seen = {"batches": 0, "text_targets": 0, "bytes": 0}

    def token_losses(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        seen["batches"] += 1
        valid = targets[targets >= 0]
        seen["text_targets"] += sum(1 for token in valid.tolist() if token not in specials)
        seen["bytes"] += decoded_bytes(tokenizer, targets, specials)
        return np.full(targets.shape, loss, dtype=np.float64)

    monkeypatch.setattr(eval_loop, "PROGRESS_EVERY_SECONDS", 0.0)  # a line after every batch
    result = eval_loop.score_validation(cfg, token_losses)

    assert result["eval_tokens"] == int(cfg["train"]["eval_tokens"]) and seen["batches"] > 1
    # Special tokens (0 bytes) count in neither sum; every other target costs `loss` nats per decoded byte.
    assert result["eval_bytes"] == seen["bytes"]
    expected = loss * seen["text_targets"] / (math.log(2) * seen["bytes"])
    assert result["val_bpb"] == pytest.approx(expected, rel=1e-12)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("eval: 4,096 tokens") and len(lines) == 1 + seen["batches"]
    assert lines[-1].startswith("eval") and "4,096 / 4,096 tokens" in lines[-1]
