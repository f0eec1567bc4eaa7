"""research/judging/verdict.py's smaller rules, each at its edge with the expected answer written out: which failures repeat,
the margin rule `single` at its threshold, a noisier kind's two pairs, the paired deltas of the report, the columns
a decision fills, the stop on consecutive crashes and the crashed baseline."""
import math

import pytest

from research.judging.verdict import (CONTINUE, Decision, Trained, check_baseline, check_stop, judge_single_run, decision_fields,
                             experiments_since_incumbent_ran, failure_repeats, finite_or_none, first_seed,
                             judge_baseline, judge_candidate, judge_failure, judged_sd, keep_threshold,
                             keep_margin, kind_noise_settings, min_pairs_to_keep, noise_sigma, paired_deltas, round_loser)
from research.errors import ResearchStopped
from research.judging.pairing import Noise
from tests.test_decide_paired import baselines

SEQ = {"alpha": 0.05, "beta": 0.2, "effect": 2.0, "max_pairs": 4, "prior_df": 1, "min_gain": 0.0,
       "unpaired_kinds": ["shape"], "noisier_min_pairs": 2, "noisier_ratio": 1.2, "kind_prior_df": 2}
SETTINGS = {"rule": "sequential", "min_delta": 0.001, "sigma_k": 2.0, "sequential": SEQ}



@pytest.mark.parametrize("metrics,repeats", [
    ({"status": "failed", "kind": "oom"}, True), ({"status": "failed", "kind": "config"}, True),
    ({"status": "failed", "kind": "budget"}, True), ({"status": "failed", "kind": "data"}, True),
    ({"status": "failed", "kind": "nan"}, False), ({"status": "failed", "kind": "killed"}, False),
    ({"status": "ok", "kind": "oom"}, False), ({"kind": "oom"}, False), (None, False), ({}, False),
])
def test_which_failures_would_repeat_on_another_seed(metrics, repeats):
    assert failure_repeats(metrics, {"status": "failed"}) is repeats


@pytest.mark.parametrize("value,number", [("1.5", 1.5), (2, 2.0), ("nan", None), (math.inf, None), (None, None),
                                          ("x", None), ([1], None)])
def test_finite_or_none(value, number):
    assert finite_or_none(value) == number


def test_noise_sigma_and_the_single_rules_threshold():
    assert noise_sigma([1.0, "nan", 1.02, None]) == pytest.approx(math.sqrt(2e-4))  # sd of (1.0, 1.02)
    assert noise_sigma([1.0, math.nan]) is None
    assert keep_threshold(1.0, 0.004, 0.005, 2.0) == 1.0 - 0.008  # 2 sigma is the larger margin
    assert keep_threshold(1.0, 0.002, 0.005, 2.0) == 1.0 - 0.005  # min_delta is
    assert keep_threshold(1.0, None, 0.005, 2.0) == 1.0 - 0.005


def test_the_single_rule_at_its_threshold():
    threshold = 1.0 - 0.01  # best 1.0, min_delta 0.01, no sigma
    at = judge_single_run(threshold, 1.0, None, min_delta=0.01)
    assert at.status == "discard" and at.threshold == threshold  # strictly below keeps, equal does not
    assert at.reason == ("val_bpb 0.990000 is better than the best 1.000000 by 0.010000, within the noise margin "
                         "min_delta 0.01 (no noise estimate); discarded.")
    below = judge_single_run(math.nextafter(threshold, 0), 1.0, None, min_delta=0.01)
    assert below.keep and below.best_val_bpb == below.val_bpb and below.delta == pytest.approx(-0.01)
    assert below.reason.startswith("val_bpb 0.990000 beats the best 1.000000 by 0.010000, more than min_delta 0.01")
    worse = judge_single_run(1.0, 1.0, 0.004, min_delta=0.0, sigma_k=2.0)
    assert worse.reason == "val_bpb 1.000000 is not better than the best 1.000000; discarded." and worse.delta == 0.0
    sigma = judge_single_run(0.9, 1.0, 0.004, min_delta=0.0, sigma_k=2.0)
    assert "more than max(min_delta 0, 2 sigma = 0.008000)" in sigma.reason
    missing = judge_single_run(math.nan, 1.0, 0.004)
    assert missing.status == "discard" and missing.reason == "No finite val_bpb (nan); discarded."
    with pytest.raises(ValueError, match="needs a finite best"):
        judge_single_run(1.0, math.inf, None)


def test_a_crash_or_a_skip_leaves_the_best_where_it_was():
    crash = judge_failure(baselines(), "crash", "OOM at step 3")
    assert (crash.status, crash.reason, crash.error, crash.best_val_bpb) == ("crash", "OOM at step 3", "OOM at step 3",
                                                                             pytest.approx(1.005))
    skip = judge_failure(baselines(), "skip", None)
    assert (skip.status, skip.reason, skip.error) == ("skip", "skip", None)


def test_the_noise_handed_to_the_sprt_is_widened_for_its_degrees_of_freedom():
    assert judged_sd(Noise(None, 0, 0.01, 0, df=4.0)) == pytest.approx(0.01 * math.sqrt(1.25))
    assert judged_sd(Noise(None, 0, 0.01, 0, df=0.5)) == pytest.approx(0.01 * math.sqrt(2))  # at least one df
    assert kind_noise_settings(SEQ, "shape") == {"kind_prior_df": 2.0, "kind_unpaired": True}
    assert kind_noise_settings({}, None) == {"kind_prior_df": 2.0, "kind_unpaired": False}
    assert kind_noise_settings(SEQ, "optimizer") == {"kind_prior_df": 2.0, "kind_unpaired": False}


def test_how_many_pairs_a_noisier_kind_needs():
    seq = {"noisier_ratio": 1.2, "noisier_min_pairs": 3, "unpaired_kinds": ["shape"]}
    assert min_pairs_to_keep(seq, Noise(None, 0, 0.01, 0, 0.01), "shape") == 3  # named unpaired
    assert min_pairs_to_keep(seq, Noise(None, 0, 0.012, 0, 0.01), "optimizer") == 1  # exactly 1.2x: not noisier
    assert min_pairs_to_keep(seq, Noise(None, 0, 0.0121, 0, 0.01), "optimizer") == 3
    assert min_pairs_to_keep(seq, Noise(None, 0, 0.02, 0, None), "optimizer") == 1  # no pooled figure yet
    assert min_pairs_to_keep({}, Noise(None, 0, 0.0121, 0, 0.01), None) == 2  # the defaults: 1.2 and 2


def test_an_unpaired_kind_is_not_kept_on_one_pair_however_good():
    rows = baselines()
    # Judged sd 0.01 x sqrt 2 (the safe prior, one df); a 0.06 gain settles the SPRT (LLR 6.5 > ln 16) on one pair.
    one = judge_candidate(rows, SETTINGS, Trained({43: 0.95}, {}), 42, kind="shape")
    assert one.status == CONTINUE and one.change_kind == "shape" and one.next_seed == 42
    assert one.verdict.endswith("(shape changes); a noisier kind needs 2 pairs to be kept")
    two = judge_candidate(rows, SETTINGS, Trained({43: 0.95, 42: 0.94}, {}), 42, kind="shape")
    assert two.keep and two.paired_seeds == (42, 43)
    plain = judge_candidate(rows, SETTINGS, Trained({43: 0.95}, {}), 42, kind="optimizer")
    assert plain.keep


def test_a_control_run_when_the_incumbent_has_not_run_for_control_every_experiments():
    rows = baselines() + [{"exp": 2, "status": "discard", "seed_runs": "43:1.02", "paired_exp": 0},
                          {"exp": 3, "status": "discard", "seed_runs": "43:1.03", "paired_exp": 0}]
    assert experiments_since_incumbent_ran(rows) == 2
    assert first_seed(rows, 42, control_every=2) == 44  # a new seed past every run and the default
    assert first_seed(rows, 42, control_every=3) == 43  # not yet: the incumbent's most recent seed
    assert first_seed(rows, 42, control_every=0) == 43
    rows.append({"exp": 4, "status": "discard", "seed_runs": "44:1.02", "paired_exp": 0, "incumbent_runs": "44:1.0"})
    assert experiments_since_incumbent_ran(rows) == 0  # it ran seed 44 for exp 4's pair
    rows.append({"exp": 5, "status": "crash"})
    rows.append({"exp": 6, "status": "skip"})
    assert experiments_since_incumbent_ran(rows) == 2  # a crash and a skip are experiments too
    rows.append({"exp": 7, "status": "keep", "seed_runs": "44:0.9", "paired_exp": 0})
    assert experiments_since_incumbent_ran(rows) == 0  # the new incumbent's own run


def test_the_columns_a_decision_fills():
    decision = Decision("keep", "why", val_bpb=0.95, best_val_bpb=0.95, delta=-0.05, paired_exp=3,
                        paired_seeds=(42, 43), paired_delta=-0.04, paired_se=0.01, verdict="SPRT ...",
                        adjusted_val_bpb=0.951, speed_slope=-0.1, change_kind="optimizer")
    trained = Trained({42: 0.95, 43: 0.96}, {43: 1.0}, {42: 700.0}, {43: 710.5})
    assert decision_fields(decision, trained) == {
        "adjusted_val_bpb": 0.951, "speed_slope": -0.1, "change_kind": "optimizer", "seed_speeds": "42:700.0",
        "incumbent_speeds": "43:710.5", "status": "keep", "val_bpb": 0.95, "best_val_bpb": 0.95, "delta": -0.05,
        "paired_exp": 3, "paired_seeds": "42 43", "paired_delta": -0.04, "paired_se": 0.01, "verdict": "SPRT ...",
        "seed_runs": "42:0.95 43:0.96", "incumbent_runs": "43:1.0", "error": None}
    empty = decision_fields(Decision("crash", "x", error="boom"), Trained({}))
    assert empty["paired_seeds"] is None and empty["seed_runs"] is None and empty["error"] == "boom"


def test_paired_deltas_recorded_or_against_the_base_seeds_baseline_replaced_by_each_keep():
    history = [
        {"exp": 2, "status": "discard", "val_bpb": 1.01},        # before the reference: left out
        {"exp": 0, "status": "baseline", "seed": 43, "val_bpb": 1.02},
        {"exp": 1, "status": "baseline", "seed": 42, "val_bpb": 1.0},
        {"exp": 3, "status": "keep", "val_bpb": 0.98},
        {"exp": 4, "status": "discard", "val_bpb": 0.97, "paired_delta": -0.005},  # recorded wins
        {"exp": 5, "status": "discard", "val_bpb": 0.99},
        {"exp": 6, "status": "crash", "val_bpb": None},
    ]
    deltas = paired_deltas(history, 42)
    assert deltas == {2: pytest.approx(0.01), 3: pytest.approx(-0.02), 4: -0.005, 5: pytest.approx(0.01)}
    # No base seed: recorded deltas, and from the first keep on, deltas against it (exp 5: 0.99 - 0.98).
    assert paired_deltas(history, None) == {4: -0.005, 5: pytest.approx(0.01)}
    assert paired_deltas(history, "43") == {2: pytest.approx(-0.01), 3: pytest.approx(-0.04), 4: -0.005,
                                            5: pytest.approx(0.01)}


def test_the_run_stops_after_consecutive_crashes_skips_aside():
    crash = {"status": "crash", "error": "\n  CUDA out of memory\nmore"}
    rows = [{"status": "keep"}, crash, {"status": "skip"}, crash]
    assert check_stop(rows, 2) == ("The last 2 experiments crashed (last error: CUDA out of memory); the run stopped "
                                   "so you can fix the cause, see the error column of results.tsv.")
    assert check_stop(rows, 3) is None and check_stop(rows, 0) is None and check_stop([crash], 2) is None
    assert check_stop([{"status": "crash"}], 1).startswith("The last 1 experiments crashed (last error: no error recorded)")
    assert "x" * 200 + ")" in check_stop([{"status": "crash", "error": "x" * 300}], 1)


def test_a_crashed_baseline_stops_the_run():
    check_baseline([])
    check_baseline(baselines())
    with pytest.raises(ResearchStopped, match=r"^The baseline crashed \(OOM\); fix the configuration"):
        check_baseline([{"exp": 0, "status": "crash", "error": "OOM"}, {"exp": 1, "status": "discard", "val_bpb": 1.0}])
    with pytest.raises(ResearchStopped, match=r"\(no val_bpb\)"):
        check_baseline(baselines() + [{"exp": 2, "status": "baseline", "val_bpb": math.nan}])
    check_baseline([{"exp": 0, "status": "baseline", "val_bpb": 1.0}, {"exp": 1, "status": "crash"}])


def test_a_baseline_joins_the_incumbents_runs_whole():
    rows = baselines((1.0,))
    assert judge_baseline(rows, 43, 1.01) == Decision("baseline", "baseline on seed 43", 1.01, pytest.approx(1.005),
                                                      paired_seeds=(43,))


def test_a_round_loser_is_discarded_with_its_figures_against_the_rounds_starting_incumbent():
    rows = baselines() + [{"exp": 5, "status": "keep", "seed_runs": "42:0.9 43:0.9", "paired_exp": 0}]
    loser = round_loser(rows, {42: 0.95, 44: 0.97}, winner=5)
    assert loser == Decision("discard", "not the round's best (exp 5 was); discarded.", pytest.approx(0.96),
                             pytest.approx(0.9), pytest.approx(0.96 - 1.005), paired_exp=0, paired_seeds=(42,),
                             paired_delta=pytest.approx(-0.05), verdict="round: not the best member")
    unmeasured = round_loser(rows, {}, winner=5)
    assert (unmeasured.val_bpb, unmeasured.delta, unmeasured.paired_seeds, unmeasured.paired_delta) == (None, None, (), None)


def test_crashes_and_skips_do_not_count_as_the_incumbent_running():
    rows = baselines() + [
        {"exp": 2, "status": "crash", "paired_exp": 0, "incumbent_runs": "44:1.0"},  # its pair never happened
        {"exp": 3, "status": "skip", "paired_exp": 0, "incumbent_runs": "45:1.0"},
    ]
    assert experiments_since_incumbent_ran(rows) == 2
    # No run of the incumbent at all (the baselines crashed): every experiment counts.
    assert experiments_since_incumbent_ran([{"exp": 0, "status": "crash"}, {"exp": 1, "status": "crash"}]) == 2


def test_paired_deltas_put_a_row_without_an_experiment_number_first():
    # A baseline without "exp" counts as experiment 0: it is the reference of the discard listed before it.
    history = [{"exp": 1, "status": "discard", "val_bpb": 1.01}, {"status": "baseline", "seed": 42, "val_bpb": 1.0}]
    assert paired_deltas(history, 42) == {1: pytest.approx(0.01)}


SPEED = {"adjust": True, "prior_slope": -0.1, "prior_runs": 4}


def test_under_a_time_budget_the_gains_are_taken_at_equal_speeds():
    # Both baselines at 100 GFLOP/s: no spread of speed, so the slope is the prior's, -0.1 per unit ln(speed), and
    # the reference is ln 100 (the first measured training).
    rows = [{**row, "seed_speeds": f"{row['seed']}:100.0"} for row in baselines()]
    settings = {**SETTINGS, "speed": SPEED}
    # The candidate ran at half the speed: its 0.98 is worth 0.98 - 0.1 ln 2 = 0.91069 at full speed.
    at_speed = 0.98 - 0.1 * math.log(2)
    kept = judge_candidate(rows, settings, Trained({42: 0.98}, {}, {42: 50.0}), 42)
    assert kept.keep and kept.speed_slope == -0.1 and kept.val_bpb == 0.98
    assert kept.adjusted_val_bpb == pytest.approx(at_speed) and kept.paired_delta == pytest.approx(at_speed - 1.0)
    # The same run judged as measured (adjustment off): a 0.02 gain, one more pair needed.
    assert judge_candidate(rows, SETTINGS, Trained({42: 0.98}, {}, {42: 50.0}), 42).status == CONTINUE
    # The incumbent's new run at twice the speed: its 1.0 is worth 1.0 + 0.1 ln 2 at the reference.
    both = judge_candidate(rows, settings, Trained({42: 0.98, 44: 0.99}, {44: 1.0}, {42: 50.0, 44: 100.0},
                                                   {44: 200.0}), 42)
    gains = [1.0 - at_speed, 1.0 + 0.1 * math.log(2) - 0.99]
    assert both.paired_delta == pytest.approx(-(gains[0] + gains[1]) / 2) and both.paired_seeds == (42, 44)
    assert both.keep and both.best_val_bpb == pytest.approx((0.98 + 0.99) / 2)  # a keep: the candidate's mean


def test_the_incumbents_runs_are_read_at_the_reference_speed_too():
    # Baseline 42 at 100 GFLOP/s scored 1.00, baseline 43 at 200 scored 0.99: the slope is fitted to them with the
    # prior (4 runs of a 1% ln-speed spread: weight 4e-4): (4e-4 x -0.1 + Sxy) / (4e-4 + Sxx).
    rows = baselines((1.00, 0.99))
    rows[0]["seed_speeds"], rows[1]["seed_speeds"] = "42:100.0", "43:200.0"
    ln2 = math.log(2)
    sxx, sxy = ln2 ** 2 / 2, ln2 * -0.01 / 2
    slope = (4e-4 * -0.1 + sxy) / (4e-4 + sxx)
    decision = judge_candidate(rows, {**SETTINGS, "speed": SPEED}, Trained({43: 0.97}, {}, {43: 200.0}), 42)
    assert decision.speed_slope == pytest.approx(slope)
    # Candidate and incumbent both ran seed 43 at 200: the adjustment moves both alike and the gain stays 0.02.
    assert decision.paired_delta == pytest.approx(-0.02) and decision.adjusted_val_bpb == pytest.approx(0.97 - slope * ln2)


def test_rule_single_judges_the_first_run_on_an_incumbent_seed_against_its_threshold():
    rows = baselines() + [{"exp": 2, "status": "discard", "seed": 42, "val_bpb": 2.0}]  # not a baseline: no noise
    single = {**SETTINGS, "rule": "single", "sigma_k": 3.0}
    # Threshold: 1.005 - max(0.001, 3 x 0.0070711) = 0.98379. Seed 42 (the incumbent ran it) is judged, not 41.
    decision = judge_candidate(rows, single, Trained({41: 0.90, 42: 0.984}), 42)
    assert decision.status == "discard" and decision.val_bpb == 0.984 and decision.verdict == "single run vs threshold"
    assert decision.threshold == pytest.approx(1.005 - 3 * 0.01 / math.sqrt(2))
    assert decision.reason.startswith("val_bpb 0.984000 is better than the best 1.005000 by 0.021000, within the noise")
    assert judge_candidate(rows, single, Trained({41: 0.90, 42: 0.983}), 42).keep
    assert keep_margin(rows, single) == pytest.approx(3 * 0.01 / math.sqrt(2))
    # Without a rule named, the sequential one: the same margin as when it is named.
    unnamed = {key: value for key, value in SETTINGS.items() if key != "rule"}
    assert keep_margin(rows, unnamed) == keep_margin(rows, SETTINGS) != keep_margin(rows, single)
    assert judge_candidate(rows, unnamed, Trained({42: 0.98}), 42).verdict.startswith("SPRT")


def test_a_decision_with_nothing_measured():
    rows = baselines()
    nothing = judge_candidate(rows, SETTINGS, Trained({}), 42)
    assert (nothing.status, nothing.reason, nothing.error) == ("discard", "no finite val_bpb; nothing kept.",
                                                               "no finite val_bpb")
    assert nothing.paired_exp == 0 and nothing.best_val_bpb == pytest.approx(1.005)
    failed = judge_candidate(rows, SETTINGS, Trained({42: 0.9}), 42, failure="the paired run on seed 43 failed")
    assert failed.reason == "the paired run on seed 43 failed; nothing kept." and failed.val_bpb == 0.9
    # The first run failed on a seed that may not repeat: nothing measured yet, one more try on another seed.
    retry = judge_candidate(rows, SETTINGS, Trained({}, failed_seeds=(43,)), 42)
    assert retry.status == CONTINUE and retry.next_seed == 42 and retry.delta is None and retry.paired_delta is None
    # Rule single has no run to judge yet either: it asks for the same retry as the paired rule.
    assert judge_candidate(rows, {**SETTINGS, "rule": "single"}, Trained({}, failed_seeds=(43,)), 42) == retry


def test_an_unknown_keep_rule_is_one_sentence_naming_the_rules():
    from research.errors import ConfigurationError
    from research.judging.verdict import SequentialRule, SingleRule, keep_rule

    assert keep_rule({}) is SequentialRule and keep_rule({"rule": "single"}) is SingleRule
    with pytest.raises(ConfigurationError) as raised:
        keep_rule({"rule": "majority"})
    assert str(raised.value) == ("decide.rule=majority is not a keep rule; choose one of decide.rule=sequential, "
                                 "decide.rule=single.")


def test_a_control_run_every_experiment():
    rows = baselines() + [{"exp": 2, "status": "discard", "seed_runs": "43:1.02", "paired_exp": 0}]
    assert first_seed(rows, 42, control_every=1) == 44


def test_each_sequential_verdict_whole():
    rows = baselines()  # judged paired sd 0.01 x sqrt 2 = 0.014142 (one df), effect 2: target +0.028284
    said = "paired sd 0.014142"
    keep = judge_candidate(rows, SETTINGS, Trained({42: 0.95}), 42)
    verdict = f"SPRT favours a gain of +0.028284 over none: LLR +5.07 after 1 pair(s), bounds [-1.56, +2.77], {said}"
    assert keep == Decision("keep", f"keep: paired gain 0.050000 over 1 pair(s); {verdict}.", 0.95, 0.95,
                            pytest.approx(0.95 - 1.005), None, 0, (42,), pytest.approx(-0.05),
                            pytest.approx(0.01 * math.sqrt(2)), verdict, adjusted_val_bpb=0.95, speed_slope=0.0)
    more = judge_candidate(rows, SETTINGS, Trained({42: 0.98}), 42)
    verdict = f"SPRT cannot yet tell no gain from +0.028284: LLR +0.83 after 1 pair(s), bounds [-1.56, +2.77], {said}"
    assert (more.status, more.reason, more.verdict, more.next_seed, more.incumbent_runs_next, more.pairs_left) == (
        CONTINUE, f"undecided, next pair on seed 43: {verdict}", verdict, 43, False, 3)  # max_pairs 4 less 1 run
    assert more.paired_se == pytest.approx(0.01 * math.sqrt(2)) and more.paired_delta == pytest.approx(-0.02)
    # Two pairs: the standard error is the judged sd over sqrt 2, and 2 pairs are left of max_pairs 4.
    two = judge_candidate(rows, SETTINGS, Trained({42: 0.98, 43: 0.995}), 42)
    assert two.status == CONTINUE and two.pairs_left == 2 and two.paired_se == pytest.approx(0.01)
    # A seed whose run failed is never the next pair's: 43 failed, so 44, which the incumbent must train.
    skip43 = judge_candidate(rows, SETTINGS, Trained({42: 0.98}, failed_seeds=(43,)), 42)
    assert (skip43.next_seed, skip43.incumbent_runs_next) == (44, True)
    half = 0.01 * math.sqrt(2)
    capped = judge_candidate(rows, SETTINGS, Trained({42: 1.0 - half, 43: 1.01 - half, 44: 1.0 - half,
                                                      45: 1.0 - half}, {44: 1.0, 45: 1.0}), 42)
    # LLR about 0 (half the effect every pair): printed +0.00 or -0.00 as the last bits fall.
    assert capped.verdict.startswith("SPRT cannot yet tell no gain from +0.028284: LLR ")
    assert capped.verdict.endswith(f"0.00 after 4 pair(s), bounds [-1.56, +2.77], {said}, cap reached")
    assert capped.status == "discard" and capped.paired_delta == pytest.approx(-half) and capped.paired_exp == 0
    reject = judge_candidate(rows, SETTINGS, Trained({42: 1.03}), 42)
    assert reject.status == "discard" and reject.paired_delta == pytest.approx(0.03) and reject.paired_seeds == (42,)


def test_a_real_gain_under_min_gain_keeps_its_figures_and_one_at_it_waits_for_a_noisier_kinds_pairs():
    rows = baselines()
    settings = {**SETTINGS, "sequential": {**SEQ, "min_gain": 1.0 - 0.95}}
    under = judge_candidate(rows, settings, Trained({42: 0.9501}), 42)
    assert under.reason == "paired gain 0.049900 is real but below decide.sequential.min_gain; discarded."
    assert under.paired_delta == pytest.approx(-0.0499) and under.paired_exp == 0 and under.val_bpb == 0.9501
    # At min_gain exactly, on one pair of a kind that needs two: not discarded for min_gain, asked for a second pair.
    waiting = judge_candidate(rows, settings, Trained({42: 0.95}), 42, kind="shape")
    assert waiting.status == CONTINUE and waiting.verdict.endswith("a noisier kind needs 2 pairs to be kept")


def test_a_round_winner_of_two_is_judged_on_the_pairs_after_its_first():
    rows = baselines()
    # Pairs: +0.05 on 42 (the lucky first), then +0.05 on 43: one pair of evidence, which settles it.
    winner = judge_candidate(rows, SETTINGS, Trained({42: 0.95, 43: 0.96}), 42, selected_from=2)
    assert winner.keep and winner.reason.startswith("keep: paired gain 0.050000 over 1 pair(s)")
    first_only = judge_candidate(rows, SETTINGS, Trained({42: 0.95}), 42, selected_from=2)
    assert first_only.status == CONTINUE and "LLR +0.00 after 0 pair(s)" in first_only.verdict


def test_without_a_noise_estimate_nothing_is_judged():
    one = baselines((1.0,))
    reason = "no noise estimate yet (decide.baseline_repeats must be 2 or more)"
    decision = judge_candidate(one, SETTINGS, Trained({42: 0.5}), 42)
    assert (decision.status, decision.reason, decision.error) == ("discard", reason + "; discarded.", reason)
    assert decision.paired_delta == pytest.approx(-0.5) and decision.paired_seeds == (42,)


def test_the_single_rules_defaults_and_figures():
    # sigma_k defaults to 2: the threshold is 1.0 - 2 x 0.005 = 0.99.
    assert judge_single_run(0.9899, 1.0, 0.005).keep and judge_single_run(0.9901, 1.0, 0.005).status == "discard"
    missing = judge_single_run(None, 1.0, 0.005)
    assert (missing.threshold, missing.val_bpb) == (0.99, None)
    inside = judge_single_run(0.995, 1.0, 0.005)
    assert (inside.val_bpb, inside.best_val_bpb, inside.delta, inside.threshold) == (0.995, 1.0, pytest.approx(-0.005),
                                                                                    0.99)
    with pytest.raises(ValueError) as refused:
        judge_single_run(1.0, None, None)
    assert str(refused.value) == "judge_single_run() needs a finite best val_bpb; record a baseline first."


def test_settings_read_by_name_with_their_defaults():
    assert kind_noise_settings({"kind_prior_df": 5}, None)["kind_prior_df"] == 5.0
    assert min_pairs_to_keep({"unpaired_kinds": ["shape"]}, Noise(None, 0, 0.01, 0, 0.01), "shape") == 2
    assert min_pairs_to_keep({"noisier_ratio": 2.0}, Noise(None, 0, 0.015, 0, 0.01), None) == 1


def test_a_long_crash_message_is_cut_at_200_characters():
    assert check_stop([{"status": "crash", "error": "x" * 300}], 1) == (
        f"The last 1 experiments crashed (last error: {'x' * 200}); the run stopped so you can fix the cause, see the "
        "error column of results.tsv.")


def test_the_first_seed_without_control_runs_asked_for():
    rows = baselines() + [{"exp": 2, "status": "discard", "seed_runs": "43:1.02", "paired_exp": 0}]
    assert first_seed(rows, 42) == 43  # control_every defaults to 0: no control run, however long ago


def test_the_margin_told_to_the_proposer_reads_the_runs_at_equal_speeds():
    # Three baselines: 1.00 at 100 GFLOP/s, 0.99 at 200, 1.004 at 100. By hand: x = ln(speed), the slope fitted
    # around the config's means with the prior (4 runs of a 1% spread: weight 4e-4, slope -0.1), never above 0;
    # the runs adjusted to ln 100; their spread on 2 df less what the slope took; the paired prior 2 x that.
    rows = baselines((1.00, 0.99, 1.004))
    for row, speed in zip(rows, (100.0, 200.0, 100.0)):
        row["seed_speeds"] = f"{row['seed']}:{speed}"
    xs, ys = [math.log(100.0), math.log(200.0), math.log(100.0)], [1.00, 0.99, 1.004]
    mx, my = sum(xs) / 3, sum(ys) / 3
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope, slope_df = min((4e-4 * -0.1 + sxy) / (4e-4 + sxx), 0.0), sxx / (4e-4 + sxx)
    adjusted = [y - slope * (x - math.log(100.0)) for x, y in zip(xs, ys)]
    mean = sum(adjusted) / 3
    seed_df = 2 - slope_df
    assert seed_df >= 1  # the adjusted runs are used, not the raw ones
    seed_var = sum((y - mean) ** 2 for y in adjusted) / seed_df
    sigma = math.sqrt(2 * seed_var * (1 + 1 / seed_df))  # the safe prior on seed_df df, widened
    margin = keep_margin(rows, {**SETTINGS, "speed": SPEED})
    assert margin == pytest.approx(sigma * (1 + math.log(16) / 2), rel=1e-9)
    # A candidate judged there is judged with the same noise: its one pair's standard error is sigma.
    judged = judge_candidate(rows, {**SETTINGS, "speed": SPEED}, Trained({42: 0.98}, {}, {42: 100.0}), 42)
    assert judged.paired_se == pytest.approx(sigma, rel=1e-9)
    assert margin != pytest.approx(keep_margin(rows, SETTINGS), rel=1e-3)  # as measured: another margin


def test_a_candidate_is_judged_with_its_kinds_noise():
    # Baselines 1.00/1.01 and an optimizer change 0.01 better on both seeds (tests/test_gap_judgement.py works the
    # figures out): pooled paired var 5e-5 on 3 df; 2 x the seed var is 1e-4.
    rows = baselines() + [{"exp": 2, "status": "discard", "seed": 42, "seed_runs": "42:0.99 43:1.0", "paired_exp": 0,
                           "change_kind": "optimizer"}]
    pooled = judge_candidate(rows, SETTINGS, Trained({42: 0.99}), 42)
    assert pooled.paired_se == pytest.approx(math.sqrt(5e-5 * (1 + 1 / 3)))
    # A shape change (decide.sequential.unpaired_kinds): the safe prior 1e-4 on kind_prior_df 2 df.
    shape = judge_candidate(rows, SETTINGS, Trained({42: 0.99}), 42, kind="shape")
    assert shape.paired_se == pytest.approx(math.sqrt(1e-4 * (1 + 1 / 2)))
    # An optimizer change: its own pair (0 spread, 1 df) on the pooled prior worth 2 df: 2 x 5e-5 / 3 on 3 df.
    optimizer = judge_candidate(rows, SETTINGS, Trained({42: 0.99}), 42, kind="optimizer")
    assert optimizer.paired_se == pytest.approx(math.sqrt(1e-4 / 3 * (1 + 1 / 3)))


def test_a_candidate_with_no_incumbent_run_at_all():
    decision = judge_candidate([], SETTINGS, Trained({42: 1.0}), 42)
    assert decision.status == "discard" and decision.best_val_bpb is None and decision.delta is None
    assert decision.reason == "no noise estimate yet (decide.baseline_repeats must be 2 or more); discarded."
