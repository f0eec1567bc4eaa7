"""docs/INTERFACES.md's recipes, followed once each: a throwaway proposer and a throwaway backend are added the way
the recipe says (a module, its registry entry, its settings) and the product is seen using them.

If a recipe forgets a file the product needs, these tests fail at the step the document left out.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from common.paths import PROJECT_ROOT

PROPOSER_MODULE = '''
from research.proposing.proposers.base import Proposal, ProposalContext, Proposer, first_valid_change
from research.proposing.space import get_value


class HalvingProposer(Proposer):
    """Halves one configured key: the smallest proposer the recipe allows."""
    name = "halving"

    def __init__(self, cfg):
        self.key = cfg["key"]

    def propose(self, context: ProposalContext) -> Proposal:
        value = get_value(context.hparams, self.key) / 2
        return first_valid_change(iter([(self.key, value, "halved by the recipe's proposer")]), context, self.name,
                                  "the halving proposer found no valid change")
'''

BACKEND_MODULE = '''
import itertools

from hardware.cpu import CPUAdapter
from hardware.energy import Counter


class RecipeAdapter(CPUAdapter):
    """The CPU under another name, with a peak the test knows, so MFU can be checked to the digit, and an energy
    meter that counts 3.6 kJ (1 Wh) per reading."""
    name = "recipe"
    fixed_preset = "cpu"

    def peak_flops(self):
        return 2.0e12

    def energy_counters(self):
        joules = itertools.count(0, 3600)
        return [Counter("recipe meter", lambda: float(next(joules)))]
'''


def _module(tmp_path: Path, monkeypatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_new_proposer_added_by_the_recipe_is_composed_built_and_recorded(tmp_path, monkeypatch):
    from flows.compose import compose
    from research.proposing.proposers import PROPOSERS
    from research.proposing.proposers.base import ProposalContext
    from research.proposing.space import load_space
    from tasks.propose import propose_change

    _module(tmp_path, monkeypatch, "recipe_proposer", PROPOSER_MODULE)  # step 1: the module
    monkeypatch.setitem(PROPOSERS, "halving", "recipe_proposer:HalvingProposer")  # step 2: the registry entry
    conf = tmp_path / "conf" / "proposer"  # step 3: conf/proposer/<name>.yaml (here on Hydra's search path)
    conf.mkdir(parents=True)
    (conf / "halving.yaml").write_text("name: halving\nkey: optim.matrix_lr\n")

    cfg = compose(["proposer=halving", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"])
    context = ProposalContext(hparams=cfg["hparams"], space=load_space(PROJECT_ROOT / "conf" / "space.yaml"),
                              seq_len=int(cfg["train"]["seq_len"]), seed=0)
    record = propose_change(str(tmp_path / "exp"), cfg["proposer"], context)  # what the flow's propose task calls

    written = json.loads((tmp_path / "exp" / "proposal.json").read_text())
    assert written["proposer"] == "halving"
    assert record.change.key == "optim.matrix_lr"
    assert record.change.value == pytest.approx(cfg["hparams"]["optim"]["matrix_lr"] / 2)


@pytest.mark.slow
def test_a_new_backend_added_by_the_recipe_trains_and_reports_energy_and_mfu(tmp_path, monkeypatch, tiny_dataset):
    import hardware
    from flows.compose import compose
    from hardware import detection
    from training.entry import run
    from training.run_config import training_config, write_training_config

    _module(tmp_path, monkeypatch, "recipe_backend", BACKEND_MODULE)  # step 1: hardware/<name>.py
    monkeypatch.setitem(hardware.ADAPTERS, "recipe", "recipe_backend:RecipeAdapter")  # step 2
    monkeypatch.setattr(detection, "BACKENDS", ("recipe", *detection.BACKENDS))  # step 3: its probe and place
    monkeypatch.setattr(detection, "recipe_available", lambda: True, raising=False)

    cfg = compose(["preset=cpu", "backend=recipe", "budget.kind=steps", "budget.steps=3", "hparams.model.depth=2",
                   "hparams.batch.total_batch_tokens=1024", "hparams.batch.device_batch_size=4",
                   "train.eval_tokens=8192"])
    data = {"shard_dir": str(tiny_dataset["shard_dir"]), "tokenizer_dir": str(tiny_dataset["tokenizer_dir"]),
            "data_version": "test"}
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    write_training_config(exp_dir, training_config(cfg, cfg["hparams"], 42, data))

    metrics = run(exp_dir)  # the training process's own entry, in this process so the registries above apply

    assert metrics["backend"] == "recipe"
    watt_hours = metrics["energy_kwh"] * 1000  # its own meter (whole Wh per reading), not RAPL's or none
    assert watt_hours >= 1 and watt_hours == pytest.approx(round(watt_hours))
    expected_mfu = 100 * metrics["flops_per_token"] * metrics["tokens_per_second"] / 2.0e12
    assert metrics["mfu_percent"] == pytest.approx(expected_mfu, rel=1e-6)  # its peak, not the CPU's


RULE_MODULE = '''
from research.judging.verdict import Decision, Evidence


class GainLine:
    """Keep when the first paired gain reaches decide.gain_line.margin: the smallest rule the recipe allows."""

    @staticmethod
    def judge(evidence: Evidence) -> Decision:
        margin = float(evidence.settings["gain_line"]["margin"])
        gain = evidence.gains[0][1]
        status = "keep" if gain >= margin else "discard"
        return Decision(status, f"gain {gain:.4f} against the line {margin}", verdict="gain line",
                        **evidence.figures)

    @staticmethod
    def keep_margin(rows, settings, best):
        return float(settings["gain_line"]["margin"])
'''


@pytest.mark.parametrize("gain,status", [(0.0101, "keep"), (0.0099, "discard")])
def test_a_new_keep_rule_added_by_the_recipe_judges_the_paired_loop_and_tells_the_proposer(tmp_path, monkeypatch,
                                                                                          gain, status):
    from cli.preflight import check_before_training
    from flows.compose import compose
    from research.errors import ConfigurationError
    from research.judging.paired_runs import settle_pairs
    from research.judging.pairing import format_runs
    from research.judging.verdict import KEEP_RULES, Trained, decision_fields, keep_margin

    overrides = ["preset=cpu", "decide.rule=gain_line", "+decide.gain_line.margin=0.01"]  # step 3: its settings
    with pytest.raises(ConfigurationError, match=r"decide.rule=gain_line is not a keep rule; choose one of "
                                                 r"decide.rule=sequential, decide.rule=single\."):
        check_before_training(compose(overrides), checks=("keep rule",))  # before the registry entry: one sentence
    _module(tmp_path, monkeypatch, "recipe_rule", RULE_MODULE)  # step 1: the module
    monkeypatch.setitem(KEEP_RULES, "gain_line", "recipe_rule:GainLine")  # step 2: its registry entry
    cfg = compose(overrides)
    check_before_training(cfg, checks=("keep rule",))

    rows = [{"exp": i, "status": "baseline", "seed": 42 + i, "val_bpb": value, "seed_runs": format_runs({42 + i: value})}
            for i, value in enumerate((1.00, 1.01))]
    asked = []

    def train(runs):  # the rule decides on the first pair: nothing more is trained
        asked.extend(runs)
        return {}

    decision, trained, spent = settle_pairs(rows, cfg["decide"], Trained({42: 1.00 - gain}), train, 42)
    assert (decision.status, decision.verdict, spent, asked) == (status, "gain line", 0, [])
    assert decision_fields(decision, trained)["verdict"] == "gain line"  # what the ledger row records
    assert keep_margin(rows, cfg["decide"]) == 0.01  # what the proposer is told it must gain
