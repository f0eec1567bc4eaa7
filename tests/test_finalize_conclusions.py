"""finalize's conclusions (research/judging/finalize.py) at their thresholds: a cost just beyond or just within z standard
errors (a nonzero one), the overfitting flag on either side of one standard error, and the block left when a key
kept twice is ablated. Scores are built so that each figure is known by hand: two seeds whose differences are
m - c and m + c have mean m and standard error exactly c (sd c x sqrt 2, over sqrt 2)."""
from __future__ import annotations

import math

import pytest

from research.judging.finalize import (Arm, Paired, arm_values, fresh_seeds, paired, plan_arms, summarize, trainings_needed,
                               verified_markdown)

BASE = {"seed": 42, "optim": {"lr": 0.04, "wd": 0.1}, "model": {"depth": 4}}
SEEDS = (1000, 1001)


def keep(exp, key, value, block, paired_delta=-0.01):
    return ({"exp": exp, "key": key, "change": f"{key}={value}", "paired_delta": paired_delta}, block)


def lr_depth_lr():
    """Three keeps: lr 0.04 -> 0.05 (exp 3), depth 4 -> 2 (exp 7), lr 0.05 -> 0.06 (exp 9: lr kept twice)."""
    first = {**BASE, "optim": {"lr": 0.05, "wd": 0.1}}
    second = {**first, "model": {"depth": 2}}
    third = {**second, "optim": {"lr": 0.06, "wd": 0.1}}
    return [keep(3, "optim.lr", 0.05, first), keep(7, "model.depth", 2, second), keep(9, "optim.lr", 0.06, third)]


def test_a_key_kept_twice_is_ablated_back_to_the_value_before_its_last_keep():
    arms, notes = plan_arms(BASE, lr_depth_lr(), ablation=True)
    blocks = {arm.name: arm.hparams for arm in arms}
    assert list(blocks) == ["baseline", "final", "without-exp7", "without-exp9"]
    assert blocks["final"] == {"seed": 42, "optim": {"lr": 0.06, "wd": 0.1}, "model": {"depth": 2}}
    # Without exp 9: lr back to exp 7's 0.05 (not the baseline's 0.04), depth stays 2.
    assert blocks["without-exp9"] == {"seed": 42, "optim": {"lr": 0.05, "wd": 0.1}, "model": {"depth": 2}}
    assert blocks["without-exp7"] == {"seed": 42, "optim": {"lr": 0.06, "wd": 0.1}, "model": {"depth": 4}}
    assert notes == ["exp 3 (optim.lr=0.05): superseded by exp 9, which set optim.lr again; not ablated."]
    assert [arm.change for arm in arms] == [None, None, "model.depth=2", "optim.lr=0.06"]
    assert all(arm.same_as is None for arm in arms) and trainings_needed(arms, 4) == 16
    assert BASE == {"seed": 42, "optim": {"lr": 0.04, "wd": 0.1}, "model": {"depth": 4}}  # inputs untouched


def test_an_ablation_equal_to_another_arm_shares_its_trainings_and_a_keep_without_a_key_is_noted():
    only = keep(3, "optim.lr", 0.05, {**BASE, "optim": {"lr": 0.05, "wd": 0.1}})
    arms, notes = plan_arms(BASE, [only], ablation=True)
    assert [(arm.name, arm.same_as) for arm in arms] == [("baseline", None), ("final", None),
                                                        ("without-exp3", "baseline")]
    assert trainings_needed(arms, 3) == 6
    keyless = ({"exp": 4, "change": "?"}, BASE)
    arms, notes = plan_arms(BASE, [keyless], ablation=True)
    assert notes == ["exp 4: no key recorded; not ablated."] and [arm.name for arm in arms] == ["baseline", "final"]
    assert arms[1].same_as == "baseline"  # the final block is the default one: trained once, as the baseline
    assert fresh_seeds("1000", 3) == [1000, 1001, 1002]


def records(arm_diffs: dict[str, tuple[float, float]], column="val_bpb", final=2.0) -> list[dict]:
    """final at `final` on both seeds; each other arm at final + (its two per-seed differences)."""
    out = [{"arm": "final", "seed": seed, column: final} for seed in SEEDS]
    for arm, diffs in arm_diffs.items():
        out += [{"arm": arm, "seed": seed, column: final + diff} for seed, diff in zip(SEEDS, diffs)]
    return out


def one_keep_arms():
    block = {**BASE, "optim": {"lr": 0.05, "wd": 0.1}}
    arms = [Arm("baseline", BASE), Arm("final", block), Arm("without-exp3", {**BASE, "seed": 7}, None, "optim.lr=0.05")]
    return arms, [{"exp": 3, "paired_delta": -0.004}]


@pytest.mark.parametrize("cost, z, verdict", [
    (0.00201, 2.0, "matters"),             # 2.01 standard errors of 0.001
    (0.00199, 2.0, "no measurable cost"),  # 1.99 standard errors
    (0.00199, 1.0, "matters"),             # the same cost at z = 1: z is read, not assumed
    (-0.00201, 2.0, "no measurable cost"),  # removing it helps: it does not matter, however clearly
])
def test_a_cost_matters_only_beyond_z_standard_errors(cost, z, verdict):
    arms, keep_rows = one_keep_arms()
    c = 0.001
    scores = records({"baseline": (0.05, 0.05), "without-exp3": (cost - c, cost + c)})
    summary = summarize(arms, scores, keep_rows, z=z)
    [item] = summary["changes"]
    assert item["cost"].mean == pytest.approx(cost, abs=1e-12) and item["cost"].se == pytest.approx(c, rel=1e-9)
    assert item["verdict"] == verdict and item["exp"] == 3 and item["change"] == "optim.lr=0.05"
    assert item["gain_at_keep"] == 0.004


def test_a_cost_on_one_seed_has_no_standard_error_and_does_not_matter():
    arms, keep_rows = one_keep_arms()
    scores = [{"arm": "final", "seed": 1000, "val_bpb": 2.0}, {"arm": "without-exp3", "seed": 1000, "val_bpb": 2.5},
              {"arm": "baseline", "seed": 1000, "val_bpb": 2.5}]
    summary = summarize(arms, scores, keep_rows, z=2.0)
    assert summary["changes"][0]["cost"] == Paired(0.5, None, 1) and summary["changes"][0]["verdict"] == "no measurable cost"
    assert summary["gain"] == Paired(0.5, None, 1) and summary["real"] is False
    assert summarize(arms, scores, [], z=2.0)["changes"][0]["gain_at_keep"] is None  # a keep row not found


@pytest.mark.parametrize("test_gain, flagged", [
    (0.0011, False),  # 1.1 standard errors on the test split: it shows the gain
    (0.0009, True),   # 0.9: it does not, while the val gain is 50 standard errors
])
def test_overfitting_is_flagged_on_either_side_of_one_standard_error(test_gain, flagged):
    arms = [Arm("baseline", BASE), Arm("final", {**BASE, "seed": 1})]
    c = 0.001
    val = records({"baseline": (0.05 - c, 0.05 + c)})
    test = records({"baseline": (test_gain - c, test_gain + c)}, column="test_bpb")
    scores = [{**v, **t} for v, t in zip(val, test)]
    summary = summarize(arms, scores, [], z=1.0)
    assert summary["real"] and summary["test_gain"].mean == pytest.approx(test_gain, abs=1e-12)
    assert summary["test_gain"].se == pytest.approx(c, rel=1e-9) and summary["test_gain"].pairs == 2
    assert summary["overfit"] is flagged


def test_no_overfitting_flag_without_a_real_val_gain_or_without_a_test_split():
    arms = [Arm("baseline", BASE), Arm("final", {**BASE, "seed": 1})]
    c = 0.001
    # Val gain 0.0009 +- 0.001 at z = 1: not real, so a flat test split says nothing about overfitting.
    weak = [{**v, **t} for v, t in zip(records({"baseline": (0.0009 - c, 0.0009 + c)}),
                                       records({"baseline": (-c, c)}, column="test_bpb"))]
    summary = summarize(arms, weak, [], z=1.0)
    assert summary["real"] is False and summary["overfit"] is False
    # A real val gain and no test split (test_bpb never recorded): no flag, and the section says nothing of it.
    no_split = records({"baseline": (0.05 - c, 0.05 + c)})
    summary = summarize(arms, no_split, [], z=1.0)
    assert summary["real"] and summary["test_gain"] == Paired(None, None, 0) and summary["overfit"] is False
    assert "test split" not in verified_markdown(summary, [], list(SEEDS), 1.0)


def test_scores_that_are_not_finite_or_missing_are_left_out():
    arms = [Arm("baseline", BASE), Arm("final", BASE, "baseline"), Arm("without-exp2", BASE, "baseline")]
    rows = [{"arm": "baseline", "seed": "1000", "val_bpb": 2.0}, {"arm": "baseline", "seed": 1001, "val_bpb": math.nan},
            {"arm": "baseline", "seed": 1002, "val_bpb": None}, {"arm": "baseline", "seed": 1003, "val_bpb": math.inf}]
    # The aliases read their twin's trainings.
    assert arm_values(arms, rows) == {"baseline": {1000: 2.0}, "final": {1000: 2.0}, "without-exp2": {1000: 2.0}}
    assert paired({"a": {1: 3.0, 2: 5.0, 3: 1.0}, "b": {1: 1.0, 2: 2.0}}, "a", "b") == Paired(2.5, 0.5, 2)
    assert paired({"a": {1: 3.0}}, "a", "b") == Paired(None, None, 0)


def test_the_verified_section_reads_the_figures_it_was_given():
    summary = {"gain": Paired(0.05, 0.001, 4), "real": True, "test_gain": Paired(0.0009, 0.001, 4), "overfit": True,
               "changes": [{"exp": 3, "change": "optim.lr=0.05", "gain_at_keep": 0.004, "cost": Paired(0.002, None, 1),
                            "verdict": "no measurable cost"},
                           {"exp": 7, "change": "model.depth=2", "gain_at_keep": None, "cost": Paired(None, None, 0),
                            "verdict": "no measurable cost"}]}
    text = verified_markdown(summary, ["a note"], [1000, 1001], 1.5)
    assert text == (
        "## Verified\n\n"
        "Re-measured on fresh seeds 1000, 1001 (`autoresearch finalize`), every arm on the same seeds.\n\n"
        "- Verified gain (baseline - final, val_bpb): +0.050000 +- 0.001000 (4 seeds): real.\n"
        "- On the held-out test split, which no decision read: +0.000900 +- 0.001000 (4 seeds).\n"
        "- **Overfitting to the validation split**: the val gain is real but the test split does not show it beyond "
        "1.5 standard errors; treat the keeps as tuned to the validation text.\n\n"
        "| kept exp | change | paired gain at keep time | cost of removing it now | verdict |\n"
        "|---:|---|---:|---:|---|\n"
        "| 3 | `optim.lr=0.05` | +0.004000 | +0.002000 (1 seeds) | no measurable cost |\n"
        "| 7 | `model.depth=2` | n/a | n/a | no measurable cost |\n"
        "- a note\n")
    unreal = {**summary, "real": False, "overfit": False, "test_gain": Paired(None, None, 0), "changes": []}
    assert verified_markdown(unreal, [], [1000], 2.0).splitlines()[-1] == (
        "- Verified gain (baseline - final, val_bpb): +0.050000 +- 0.001000 (4 seeds): not shown beyond 2 standard errors.")


def test_a_cost_of_exactly_zero_never_matters_even_at_z_0():
    arms, keep_rows = one_keep_arms()
    # Differences -0.25 and +0.25 (exact in binary): mean exactly 0, so "beyond 0 standard errors" is false.
    scores = records({"baseline": (0.05, 0.05), "without-exp3": (-0.25, 0.25)})
    [item] = summarize(arms, scores, [{"exp": 3, "paired_delta": 0.0}], z=0.0)["changes"]
    assert item["cost"].mean == 0.0 and item["verdict"] == "no measurable cost"
    assert item["gain_at_keep"] == 0.0  # recorded as 0: no gain at keep time (not a missing figure)


def test_a_test_split_scored_on_one_seed_cannot_show_the_gain():
    arms = [Arm("baseline", BASE), Arm("final", {**BASE, "seed": 1})]
    c = 0.001
    scores = records({"baseline": (0.05 - c, 0.05 + c)})
    scores[0]["test_bpb"], scores[2]["test_bpb"] = 2.0, 2.05  # final and baseline on seed 1000 only
    summary = summarize(arms, scores, [], z=1.0)
    assert summary["test_gain"] == Paired(pytest.approx(0.05), None, 1) and summary["overfit"] is True


def test_a_missing_arm_pairs_nothing_whichever_side_it_is_on():
    assert paired({"b": {1: 1.0}}, "a", "b") == Paired(None, None, 0)
    assert paired({"a": {1: 1.0}}, "a", "b") == Paired(None, None, 0)
