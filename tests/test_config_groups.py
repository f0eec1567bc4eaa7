"""Every config group composes and is valid, so a broken YAML fails here in seconds, not hours into a run.

Each preset with each proposer and each dataset: the composed block builds a model and splits its batch
(models/hparams.py, the trainer's own rules), every searchable value sits inside the search space, the dataset
file passes the data pipeline's own check, and the proposer can be constructed. The suites compose too.
"""
from __future__ import annotations

import itertools

import pytest

from data.spec import available_datasets, load_dataset_spec
from flows.compose import CONF_DIR, compose
from models.hparams import GPTConfig, check_block
from research.proposing.proposers import make_proposer
from research.proposing.space import coerce_value, get_value, load_space

SPACE = load_space(CONF_DIR / "space.yaml")
PRESETS = sorted(path.stem for path in (CONF_DIR / "preset").glob("*.yaml"))
PROPOSERS = sorted(path.stem for path in (CONF_DIR / "proposer").glob("*.yaml"))
DATASETS = available_datasets(CONF_DIR)
SUITES = sorted(path.stem for path in (CONF_DIR / "suite").glob("*.yaml"))


def test_the_groups_are_found():
    # The globs above must see the files, or every parametrised test below would pass by running zero times.
    assert {"cpu", "datacenter"} <= set(PRESETS) and {"local", "claude"} <= set(PROPOSERS)
    assert "bundled" in DATASETS and "nightly" in SUITES


def check_block_and_space(cfg: dict) -> None:
    hparams, seq_len = cfg["hparams"], int(cfg["train"]["seq_len"])
    check_block(hparams, seq_len)
    GPTConfig.from_hparams(hparams["model"], vocab_size=int(cfg["dataset"]["vocab_size"]), seq_len=seq_len)
    for key, param in SPACE.params.items():
        value = coerce_value(param, get_value(hparams, key))  # the type the space declares
        if param.type in ("int", "float"):
            assert param.min <= value <= param.max, f"{key}={value} lies outside the search space"
        if param.type == "choice":
            assert value in param.choices, f"{key}={value} is not one of the space's choices"


@pytest.mark.parametrize("preset,proposer", list(itertools.product(PRESETS, PROPOSERS)))
def test_every_preset_composes_with_every_proposer(preset, proposer, monkeypatch):
    cfg = compose([f"preset={preset}", f"proposer={proposer}"], auto=False)
    check_block_and_space(cfg)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")  # constructing a client calls nothing
    assert make_proposer(cfg["proposer"]).name == proposer


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_composes_and_passes_the_data_pipelines_check(dataset):
    cfg = compose(["preset=cpu", "proposer=local", f"dataset={dataset}"], auto=False)
    check_block_and_space(cfg)
    spec = load_dataset_spec(dataset, CONF_DIR)  # what DVC's stages read, without Hydra
    assert spec["name"] == cfg["dataset"]["name"] == dataset


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_composes_with_datasets_that_exist(suite):
    cfg = compose(["preset=cpu", "proposer=local", f"suite={suite}"], auto=False)
    assert cfg["suite"]["datasets"] and set(cfg["suite"]["datasets"]) <= set(DATASETS)
    assert int(cfg["suite"]["experiments_per_dataset"]) > int(cfg["decide"]["baseline_repeats"])


def test_the_last_preset_override_names_the_preset_as_hydra_applies_it():
    from flows.compose import compose

    cfg = compose(["preset=cpu", "preset=datacenter"])
    assert cfg["preset"] == "datacenter" and cfg["tag"].endswith("-datacenter")
    assert cfg["hparams"]["model"]["depth"] == compose(["preset=datacenter"])["hparams"]["model"]["depth"]


def test_the_speed_adjustment_is_on_for_time_budgets_only():
    from flows.compose import compose

    assert compose(["preset=cpu"])["decide"]["speed"]["adjust"] is False  # a FLOP budget
    assert compose(["preset=cpu", "budget.kind=time"])["decide"]["speed"]["adjust"] is True
    assert compose(["preset=datacenter"])["decide"]["speed"]["adjust"] is True
    assert compose(["preset=datacenter", "decide.speed.adjust=false"])["decide"]["speed"]["adjust"] is False
