"""What Claude sees: the cached system part and the per-experiment user text."""
from __future__ import annotations

from pathlib import Path

import yaml

from research.proposing.prompt import build_prompt
from research.proposing.proposers import ProposalContext
from research.proposing.space import load_space

ROOT = Path(__file__).resolve().parents[1]
SPACE = load_space(ROOT / "conf/space.yaml")
HPARAMS = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())


def history(n=40):
    rows = [{"exp": 0, "key": None, "value": None, "description": "baseline", "val_bpb": 1.0, "delta": None,
             "status": "baseline", "error": ""}]
    for i in range(1, n + 1):
        key = ["optim.matrix_lr", "model.depth", "schedule.warmdown_frac"][i % 3]
        value = {"optim.matrix_lr": 0.04 + i / 1000, "model.depth": 8 + i, "schedule.warmdown_frac": 0.5}[key]
        status = "keep" if i in (3, 9) else ("crash" if i == 20 else "discard")
        rows.append({"exp": i, "key": key, "value": value, "description": f"try {key} #{i}",
                     "val_bpb": None if status == "crash" else 1.0 + i / 1000,
                     "delta": None if status == "crash" else (-0.01 if status == "keep" else 0.002),
                     "status": status,
                     "error": "Traceback...\n  File x\nRuntimeError: CUDA out of memory" if status == "crash" else ""})
    return rows


def context(**kw):
    base = dict(hparams=HPARAMS, space=SPACE, history=history(), best_val_bpb=0.98765, baseline_val_bpb=1.0,
                noise_sigma=0.0021, keep_margin=0.0042, hardware="cuda, NVIDIA H100 80GB HBM3",
                budget="300 s per experiment, 12 of 100 experiments left", seq_len=2048, seed=0,
                in_flight=[{"key": "optim.embedding_lr", "value": 0.9}])
    base.update(kw)
    return ProposalContext(**base)


def test_system_block_is_stable_and_cached():
    system, _ = build_prompt(context())
    assert len(system) == 1 and system[0]["type"] == "text"
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    text = system[0]["text"]
    assert "ONE" in text and "propose_change" in text
    for field in ("key", "value", "description", "reasoning"):
        assert field in text
    for key, param in SPACE.params.items():
        assert f"- {key}: " in text and param.description in text
    assert "optim.matrix_lr: float in [0.001, 0.3], log scale" in text
    assert "model.activation: one of relu2 | gelu | swiglu" in text
    assert "kv_head_ratio" in text and "multiple of device_batch_size * seq_len" in text
    # the system part does not depend on the history: it stays cached across experiments
    assert build_prompt(context(history=[]))[0] == system


def test_user_text_has_every_piece():
    _, text = build_prompt(context())
    assert "model.depth=8" in text and "optim.matrix_lr=0.04" in text and "model.value_residual=true" in text
    assert "cuda, NVIDIA H100 80GB HBM3" in text and "12 of 100 experiments left" in text
    assert "noise sigma: 0.0021" in text and "keep threshold" in text and "0.0042" in text
    assert "best val_bpb: 0.98765" in text
    assert "## History (40 experiments" in text
    assert "older rows (11)" in text            # 41 rows: 11 summarised, last 30 in full
    assert "try model.depth #40" in text and "try optim.matrix_lr #3 " not in text
    assert "## Per key" in text and "optim.matrix_lr: 13 / 2 / 0 / 0.01" in text
    assert "never tried:" in text
    assert "## Stagnation" in text
    assert "## Recent crashes" in text and "CUDA out of memory" in text
    assert "## In flight" in text and "optim.embedding_lr=0.9" in text


def test_deterministic_and_compact():
    a, b = build_prompt(context()), build_prompt(context())
    assert a == b
    assert len(a[1]) < 6000


def test_no_stagnation_note_after_a_recent_keep():
    rows = history(9)  # exp 9 is a keep
    _, text = build_prompt(context(history=rows))
    assert "## Stagnation" not in text
    assert "older rows" not in text


def test_empty_history():
    _, text = build_prompt(context(history=[], in_flight=[]))
    assert "(no experiments yet)" in text and "## In flight" not in text


def test_history_shows_each_change_against_its_base_on_the_same_seed():
    rows = [{"exp": 0, "status": "baseline", "val_bpb": 2.000, "seed": 42, "description": "baseline"},
            {"exp": 1, "status": "baseline", "val_bpb": 2.040, "seed": 43, "description": "baseline"},
            {"exp": 2, "key": "optim.matrix_lr", "value": 0.05, "status": "discard", "val_bpb": 2.015,
             "delta": -0.005, "seed": 42, "description": "lr up"}]
    _, text = build_prompt(context(history=rows, hparams={**HPARAMS, "seed": 42}, best_val_bpb=2.02))
    assert "delta | paired | status" in text
    # better than the baselines' mean (delta -0.005) but worse than seed 42's own baseline (+0.015)
    assert "2 | optim.matrix_lr=0.05 | 2.015 | -0.005 | 0.015 | discard" in text
    # a row decided by the paired rule shows its own paired delta and standard error
    rows.append({"exp": 3, "key": "optim.matrix_lr", "value": 0.06, "status": "discard", "val_bpb": 2.01,
                 "delta": -0.01, "seed": 42, "paired_delta": -0.004, "paired_se": 0.002, "description": "lr up more"})
    _, text = build_prompt(context(history=rows, hparams={**HPARAMS, "seed": 42}, best_val_bpb=2.02))
    assert "3 | optim.matrix_lr=0.06 | 2.01 | -0.01 | -0.004 +- 0.002 | discard" in text
