"""bench/gpu_check.py's fit line (predicted peak against the training's measured one), run on the CPU with the cpu
preset: the same code the first GPU session runs for the datacenter and consumer presets."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu_check  # noqa: E402

from hardware import get_adapter  # noqa: E402


@pytest.mark.slow
def test_the_fit_line_sets_the_prediction_against_the_measured_peak(tmp_path, tiny_dataset):
    data = {"shard_dir": str(tiny_dataset["shard_dir"]), "tokenizer_dir": str(tiny_dataset["tokenizer_dir"]),
            "data_version": tiny_dataset["manifest"]["data_version"]}
    with open(tmp_path / "log", "w") as log:
        fit = gpu_check.fit_check("cpu", data, 512, tmp_path, log, get_adapter("cpu"), steps=2)
    assert fit["status"] == "ok" and fit["compiled"] is False and fit["fits"]
    assert abs(fit["error"]) < 0.10, fit
    line = gpu_check.fit_line(fit)
    assert line.startswith(f"fit cpu: predicted {fit['predicted_gb']:.2f} GB, measured (max_memory_allocated) ")
    assert "fits" in gpu_check.table({"environment": {}, "flex_gradients": {}, "runs": {}, "fit": [fit]})
