"""The research loop with a fit check: a block predicted not to fit is recorded as `skip` with one sentence and no
training process, one that fits only at a lower device_batch_size trains lowered and its row says so, Claude's
prompt shows the headroom, and every trained row carries predicted and measured peak memory and steps."""
from __future__ import annotations

import json
import os

import pytest

from hardware import get_adapter
from research.records.ledger import Ledger
from research.records.runrepo import RunRepo
from tests.fake_anthropic import FakeAnthropic, tool_answer
from training.fit import FitCheck, device_facts
from training.run_config import vocab_size

# The bundled dataset (vocab 8192), a tiny model with 2 micro-batches of 8 sequences per step.
RUN = ["preset=cpu", "hparams.model.depth=2", "hparams.model.aspect_ratio=32", "hparams.model.head_dim=32",
       "hparams.batch.device_batch_size=8", "hparams.batch.total_batch_tokens=2048", "train.seq_len=128",
       "train.eval_tokens=4096", "train.eval_batch_size=8", "budget.kind=steps", "budget.steps=4",
       "decide.baseline_repeats=2", "decide.sequential.max_pairs=1"]


def changed(cfg: dict, key: str, value, device_batch: int | None = None) -> dict:
    """The run's block with one key changed (and the device batch, where given)."""
    group, name = key.split(".")
    block = {**cfg["hparams"], group: {**cfg["hparams"][group], name: value}}
    if device_batch:
        block["batch"] = {**block["batch"], "device_batch_size": device_batch}
    return block


@pytest.mark.slow
def test_a_block_that_cannot_fit_is_skipped_and_one_that_fits_lower_is_lowered(tmp_path, monkeypatch):
    from flows.compose import compose, resolve_path
    from flows.research import research_flow

    cfg = compose(RUN + ["proposer=local"], auto=False)
    data_dir = resolve_path(cfg["paths"]["data_dir"]) / "bundled"
    check = FitCheck(128, vocab_size({"data": {"shard_dir": str(data_dir / "shards")}}), cfg["budget"],
                     device_facts(get_adapter("cpu"), "auto", "steps", 128))
    # The device holds the baseline's device batch of 8 with 1 kB to spare, so not 16 sequences per pass.
    memory = check.predict(cfg["hparams"]).need_bytes + 1000
    assert check.predict(changed(cfg, "batch.device_batch_size", 16)).need_bytes > memory
    assert check.predict(changed(cfg, "model.aspect_ratio", 256, device_batch=1)).need_bytes > memory

    proposals = [
        {"key": "model.aspect_ratio", "value": 256, "description": "much wider", "reasoning": "capacity"},
        {"key": "batch.device_batch_size", "value": 16, "description": "one pass per step", "reasoning": "speed"},
    ]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with FakeAnthropic([tool_answer(p) for p in proposals]) as fake:
        research_flow(overrides=RUN + [
            "proposer=claude", f"proposer.base_url={fake.base_url}", "proposer.max_retries=0", f"paths.runs_dir={tmp_path}",
            "tag=fit", "research.max_experiments=4", f"research.fit_memory_gb={memory / 1e9!r}"])
        prompts = [json.dumps(body["messages"]) for body in fake.message_requests()]
    run_dir = tmp_path / "fit"
    rows = Ledger(run_dir / "results.tsv").rows()
    assert [row["status"] for row in rows[:2]] == ["baseline", "baseline"]

    skipped = rows[2]
    assert skipped["status"] == "skip" and skipped["change"] == "model.aspect_ratio=256"
    assert skipped["error"].startswith("not trained: predicted ") and " GB of " in skipped["error"]
    assert skipped["fit"] == skipped["error"] and skipped["predicted_peak_gb"] > 0
    assert skipped["steps"] is None and skipped["measured_peak_gb"] is None
    assert not os.path.exists(run_dir / "exp" / "2" / "train.log")  # no training process was started

    lowered = rows[3]
    assert lowered["status"] in ("keep", "discard") and lowered["change"] == "batch.device_batch_size=16"
    assert lowered["fit"].startswith("device_batch_size lowered from 16 to 8")
    trained = json.loads((run_dir / "exp" / "3" / "config.json").read_text())["hparams"]["batch"]
    assert trained == {"device_batch_size": 8, "total_batch_tokens": 2048}
    assert "device_batch_size: 16" in RunRepo(run_dir / "repo").show(3)  # the block itself is as proposed

    for row in (rows[0], rows[1], rows[3]):  # predicted and measured, side by side in every trained row
        assert row["predicted_steps"] == row["steps"] == 4
        assert abs(row["predicted_peak_gb"] / row["measured_peak_gb"] - 1) < 0.10, row
    assert rows[0]["fit"] is None  # a block that runs as it is needs no sentence

    # Claude read the headroom: the current block's prediction and what would not fit.
    assert all("## Device fit" in prompt for prompt in prompts)
    assert "batch.device_batch_size raised to 16 would not fit" in prompts[0]
