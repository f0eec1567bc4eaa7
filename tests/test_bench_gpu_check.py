"""bench/gpu_check.py, the one-call GPU check, on the CPU: a tiny run through the real training children."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu_check  # noqa: E402


def test_the_preset_is_merged_over_the_block_without_hydra():
    cfg = gpu_check.preset_config("cpu")
    assert cfg["hparams"]["model"]["depth"] == 4 and cfg["hparams"]["model"]["head_dim"] == 32  # from the preset
    assert cfg["hparams"]["optim"]["normuon_beta2"] == 0.95  # from the block, untouched by the preset
    assert cfg["train"]["seq_len"] == 256 and cfg["budget"]["kind"] == "flops"  # the cpu preset: load cannot skew it
    assert "dataset" not in cfg and gpu_check.preset_config("datacenter")["train"]["seq_len"] == 2048


@pytest.mark.slow
def test_a_tiny_check_writes_its_table_with_both_mfu_conventions(tmp_path, tiny_dataset):
    out = tmp_path / "out"
    code = gpu_check.main(["--out", str(out), "--data", str(tiny_dataset["dir"]), "--preset", "cpu", "--steps", "2",
                           "--seconds", "2", "--compare", "eager",
                           "--device-name", "NVIDIA H100 80GB HBM3", "--work", str(tmp_path / "work")])
    assert code == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["environment"]["device"] == "NVIDIA H100 80GB HBM3" and report["environment"]["bf16_matmul_tflops"] > 0
    assert "CUDA only" in report["flex_gradients"]["skipped"]
    eager, budget = report["runs"]["eager 2 steps"], report["runs"]["2 s + eval"]
    assert eager["status"] == "ok" and eager["steps"] == 2 and eager["compiled"] is False
    assert 0 < eager["mfu_causal"] < eager["mfu_full_attention"]  # the fake H100 peak: both conventions, ordered
    assert budget["status"] == "ok" and math.isfinite(budget["val_bpb"]) and budget["eval_status"] == "ok"
    # the cpu preset's 65,536 evaluation tokens, cut to what the split holds: no wrapped walk by default
    assert budget["eval_tokens"] == tiny_dataset["manifest"]["tokens"]["val"] - 1 < 65536
    table = (out / "gpu_check.md").read_text()
    assert "| eager 2 steps | ok | 2 |" in table and "MFU % (6N+12hdT)" in table and "| eval s |" in table
    assert "=== python -m training.evaluate" in (out / "gpu_check.log").read_text()
    assert not list(out.rglob("checkpoint*"))  # checkpoints stay out of what comes back from the machine


def test_a_missing_dataset_is_one_sentence(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path), "--data", str(tmp_path / "nowhere")]) == 2
    assert "holds no manifest.json" in capsys.readouterr().out


def test_compare_modes_set_compile_and_the_embedding_dtype():
    assert gpu_check.compare_train("eager") == {"compile": False}
    assert gpu_check.compare_train("compiled-fp32-embeddings") == {"compile": True, "embedding_dtype": "float32"}
    assert gpu_check.compare_train("eager-bf16-embeddings") == {"compile": False, "embedding_dtype": "bfloat16"}
    assert gpu_check.preset_config("datacenter")["train"]["embedding_dtype"] == "bfloat16"  # what plain eager times
    with pytest.raises(SystemExit, match="is not eager or compiled"):
        gpu_check.compare_train("fast")
