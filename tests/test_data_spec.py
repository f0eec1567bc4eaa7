"""Dataset specs: every shipped conf/dataset file loads as plain YAML; unknown names are one clear sentence."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from data.errors import DataError
from data.layout import dvc_target
from data.spec import available_datasets, load_dataset_spec

ROOT = Path(__file__).resolve().parent.parent


def test_all_shipped_datasets_load():
    names = available_datasets(ROOT / "conf")
    assert {"bundled", "climbmix", "fineweb-edu", "tinystories", "local"} <= set(names)
    for name in names:
        spec = load_dataset_spec(name, ROOT / "conf")
        assert spec["name"] == name and spec["vocab_size"] == 8192
        assert "${" not in (ROOT / "conf" / "dataset" / f"{name}.yaml").read_text()  # plain YAML, no interpolation


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError) as error:
        load_dataset_spec("nope", ROOT / "conf")
    assert str(error.value).startswith("Unknown dataset 'nope'; choose one of: bundled, climbmix,")
    assert str(error.value).endswith(".")


def test_spec_missing_a_field(tmp_path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "broken.yaml").write_text(yaml.safe_dump({"name": "broken", "source": "huggingface", "vocab_size": 8}))
    with pytest.raises(DataError, match="lacks repo, train_files, num_train_shards"):
        load_dataset_spec("broken", tmp_path)


def test_climbmix_pins_its_last_shard_for_validation():
    spec = load_dataset_spec("climbmix", ROOT / "conf")
    assert spec["val_file"] == "shard_06542.parquet"
    assert spec["repo"] == "karpathy/climbmix-400b-shuffle"


def test_dvc_targets():
    conf = ROOT / "conf"
    assert dvc_target(load_dataset_spec("bundled", conf)) == "dvc.yaml:shards"
    assert dvc_target(load_dataset_spec("climbmix", conf)) == "data/pipelines/huggingface/dvc.yaml:shards@climbmix"
    assert dvc_target(load_dataset_spec("local", conf)) == "data/pipelines/local/dvc.yaml:shards"


def test_huggingface_pipeline_lists_every_huggingface_dataset():
    pipeline = yaml.safe_load((ROOT / "data" / "pipelines" / "huggingface" / "dvc.yaml").read_text())
    listed = set(pipeline["vars"][0]["datasets"])
    hub = {n for n in available_datasets(ROOT / "conf") if load_dataset_spec(n, ROOT / "conf")["source"] == "huggingface"}
    assert listed == hub
