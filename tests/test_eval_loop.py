"""training.eval_loop: the shared validation sums, and the progress lines the silence watchdog listens to."""
from __future__ import annotations

import math

import numpy as np
import pytest

from data.metric import load_token_bytes
from tests.training_helpers import make_experiment
from training import eval_loop
from training.run_config import load_run_config


def test_constant_loss_scores_as_loss_per_byte_and_reports_progress(tmp_path, tiny_dataset, monkeypatch, capsys):
    cfg = load_run_config(make_experiment(tmp_path, tiny_dataset))
    token_bytes = load_token_bytes(tiny_dataset["tokenizer_dir"])
    loss = 3.0
    seen = {"batches": 0, "text_targets": 0}

    def token_losses(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        seen["batches"] += 1
        valid = targets[targets >= 0]
        seen["text_targets"] += int((token_bytes[valid] > 0).sum())
        return np.full(targets.shape, loss, dtype=np.float64)

    monkeypatch.setattr(eval_loop, "PROGRESS_EVERY_SECONDS", 0.0)  # a line after every batch
    result = eval_loop.score_validation(cfg, token_losses)

    assert result["eval_tokens"] == int(cfg["train"]["eval_tokens"]) and seen["batches"] > 1
    # Special tokens (0 bytes) count in neither sum; every other target costs `loss` nats.
    expected = loss * seen["text_targets"] / (math.log(2) * result["eval_bytes"])
    assert result["val_bpb"] == pytest.approx(expected, rel=1e-12)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("eval: 4,096 tokens") and len(lines) == 1 + seen["batches"]
    assert lines[-1].startswith("eval") and "4,096 / 4,096 tokens" in lines[-1]
