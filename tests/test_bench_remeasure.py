"""The arithmetic of the CPU proposer benchmarks (bench/cpu_runs.py, bench/remeasure.py): what a run kept, its
gain at keep time, the paired re-measured gain, and the per-proposer summary. The trainings themselves are
the product's `autoresearch run`, tested elsewhere."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench/ scripts are not part of the package
from bench.cpu_runs import keep_time_gain, kept_overrides, proposer_of  # noqa: E402
from bench.remeasure import FinishedRun, paired_gain, remeasure, summary  # noqa: E402
from research.records.ledger import Ledger  # noqa: E402


def row(exp, status, val_bpb, best, change=None, seed=42, proposer="local"):
    return {"exp": exp, "status": status, "val_bpb": val_bpb, "best_val_bpb": best, "change": change,
            "seed": seed, "proposer": None if status == "baseline" else proposer}


RUN = [
    row(0, "baseline", 2.00, 2.01, seed=42),
    row(1, "baseline", 2.02, 2.01, seed=43),
    row(2, "keep", 1.98, 1.98, "optim.unembedding_lr=0.007"),
    row(3, "discard", 1.99, 1.98, "model.depth=6"),
    row(4, "keep", 1.96, 1.96, "model.depth=2"),
    row(5, "keep", 1.95, 1.95, "optim.unembedding_lr=0.009"),
    row(6, "crash", None, 1.95, "model.depth=30"),
]


def test_the_best_config_is_every_keep_with_the_last_value_per_key():
    assert kept_overrides(RUN) == ("hparams.model.depth=2", "hparams.optim.unembedding_lr=0.009")
    assert kept_overrides(RUN[:2] + [RUN[3]]) == ()


def test_gain_at_keep_time_is_the_baselines_mean_minus_the_last_best():
    assert keep_time_gain(RUN) == pytest.approx(2.01 - 1.95)
    nothing_kept = RUN[:2] + [row(2, "discard", 2.05, 2.01, "model.depth=6")]
    assert str(keep_time_gain(nothing_kept)) == "0.0"  # not "-0.0"


def test_a_run_must_hold_one_proposer():
    assert proposer_of(RUN) == "local"
    with pytest.raises(ValueError, match="one proposer"):
        proposer_of(RUN + [row(7, "discard", 2.0, 1.95, "model.depth=3", proposer="random")])


def test_paired_gain_uses_only_the_seeds_both_configs_measured():
    gain = paired_gain({1: 2.00, 2: 2.10, 3: 2.20}, {1: 1.90, 2: 2.05, 4: 1.00})
    assert gain.pairs == 2
    assert gain.mean == pytest.approx(0.075)
    assert gain.stderr == pytest.approx(0.025)
    assert paired_gain({1: 2.0}, {1: 2.1}).stderr is None
    with pytest.raises(ValueError, match="no seed"):
        paired_gain({1: 2.0}, {2: 1.9})


def test_a_finished_run_is_read_from_its_ledger(tmp_path):
    ledger = Ledger(tmp_path / "results.tsv")
    for item in RUN:
        ledger.record(item)
    run = FinishedRun.read(tmp_path, "bench-local-s42")
    assert (run.proposer, run.base_seed, run.seeds_used) == ("local", 42, frozenset({42, 43}))
    assert run.best == kept_overrides(RUN)
    assert run.keep_time_gain == pytest.approx(0.06)


def test_seeds_a_run_already_trained_on_are_refused_before_any_training(tmp_path):
    run = FinishedRun("r", "local", 1000, 0.0, (), frozenset({1000, 1001}))
    with pytest.raises(SystemExit, match="already trained on seeds \\[1001\\]"):
        remeasure([run], first_seed=1001, repeats=3, common=[], work_dir=tmp_path)


def test_summary_compares_each_pair_of_proposers_over_the_base_seeds_both_ran(capsys):
    found = ("hparams.model.depth=2",)
    runs = [FinishedRun("a", "local", 1, 0.04, found, frozenset()), FinishedRun("b", "local", 2, 0.0, (), frozenset()),
            FinishedRun("c", "random", 1, 0.03, ("hparams.model.depth=3",), frozenset()),
            FinishedRun("d", "random", 2, 0.01, ("hparams.model.depth=5",), frozenset()),
            FinishedRun("e", "local", 3, 0.09, found, frozenset())]  # base seed 3: random has no run to pair it with
    gains = {(): 0.0, found: 0.03, ("hparams.model.depth=3",): 0.01, ("hparams.model.depth=5",): -0.01}
    summary(runs, gains)
    out = capsys.readouterr().out
    assert "local: 3 run(s), mean gain at keep time 0.0433, re-measured 0.0200" in out
    keep_time, remeasured = out.split("Gains at keep time, per base seed (1, 2):")[1].split("Gains re-measured")
    # at keep time: 0.04 - 0.03 and 0.0 - 0.01, one win and one loss of the same size: p = 1
    assert "| local - random | +0.0000 | 1 / 0 / 1 | 1 |" in keep_time
    # re-measured: 0.03 - 0.01 and 0.0 - (-0.01), both wins: 1 of the 4 sign assignments as extreme, twice: 0.5
    assert "| local - random | +0.0150 | 2 / 0 / 0 | 0.5 |" in remeasured


def test_the_budget_is_the_presets_flop_budget_unless_one_is_named():
    import argparse

    from bench.cpu_runs import add_budget_arguments, budget_overrides

    parser = argparse.ArgumentParser()
    add_budget_arguments(parser)
    assert budget_overrides(parser.parse_args([])) == []  # conf/preset/cpu.yaml's FLOP budget: load cannot skew it
    assert budget_overrides(parser.parse_args(["--flops", "3.6e12"])) == ["budget.kind=flops", "budget.flops=3.6e+12"]
    assert budget_overrides(parser.parse_args(["--seconds", "30"])) == ["budget.kind=time", "budget.seconds=30"]
    assert budget_overrides(parser.parse_args(["--steps", "40"])) == ["budget.kind=steps", "budget.steps=40"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "40", "--seconds", "30"])


def test_the_seeds_a_run_used_include_its_paired_runs():
    # A candidate paired on seeds 44 and 45, for which the incumbent trained on 45 too: the fresh seeds of a
    # re-measurement must avoid all of them, not only the row's first seed.
    paired = {**row(2, "discard", 1.99, 2.01, "model.depth=6", seed=44), "seed_runs": "44:1.99 45:1.98",
              "incumbent_runs": "45:2.00 46:2.02"}
    run = FinishedRun.of_rows(RUN[:2] + [paired], "r")
    assert run.seeds_used == frozenset({42, 43, 44, 45, 46})
    with pytest.raises(SystemExit, match="already trained on seeds \\[46\\]"):
        remeasure([run], first_seed=46, repeats=2, common=[], work_dir=Path("/nonexistent"))
