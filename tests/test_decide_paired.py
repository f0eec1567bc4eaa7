"""The paired sequential judgement on hand-made rows: pairing facts, the SPRT, and every verdict it can give."""
import math

import pytest

from research.judging.verdict import (CONTINUE, Trained, first_seed, judge_baseline, judge_candidate, judge_round, keep_margin,
                             round_loser)
from research.judging.pairing import config_runs, estimate_noise, format_runs, incumbent, next_pair_seed, parse_runs
from research.judging.sprt import ACCEPT, CONTINUE as SPRT_CONTINUE, REJECT, boundaries, sprt

SEQ = {"alpha": 0.05, "beta": 0.2, "effect": 2.0, "max_pairs": 4, "prior_df": 1, "min_gain": 0.0}
SETTINGS = {"rule": "sequential", "min_delta": 0.001, "sigma_k": 2.0, "sequential": SEQ}


def baselines(values=(1.00, 1.01)):
    return [{"exp": i, "status": "baseline", "seed": 42 + i, "val_bpb": v, "seed_runs": format_runs({42 + i: v})}
            for i, v in enumerate(values)]


def test_runs_round_trip_and_damaged_pairs_are_left_out():
    assert parse_runs(format_runs({43: 0.1 + 0.2, 42: 1.5})) == {42: 1.5, 43: 0.1 + 0.2}
    assert parse_runs("42:1.0 x:2 43:nan 44:") == {42: 1.0}
    assert format_runs({}) is None and parse_runs(None) == {}


def test_a_configs_runs_are_gathered_from_every_row_that_ran_it():
    rows = baselines() + [
        {"exp": 2, "status": "keep", "seed": 42, "seed_runs": "42:0.9 43:0.91", "paired_exp": 0},
        {"exp": 3, "status": "discard", "seed": 42, "seed_runs": "42:0.95 43:0.97 44:0.96", "paired_exp": 2,
         "incumbent_runs": "44:0.92"},
        {"exp": 4, "status": "crash", "seed": 42, "val_bpb": None},
        {"exp": 5, "status": "discard", "seed": 42, "val_bpb": 0.93},  # a row from before seed_runs existed
    ]
    runs = config_runs(rows)
    assert runs[0] == {42: 1.00, 43: 1.01} and runs[2] == {42: 0.9, 43: 0.91, 44: 0.92}
    assert runs[5] == {42: 0.93} and 4 not in runs
    assert incumbent(rows).exp == 2 and incumbent(rows).mean == pytest.approx(0.91)
    assert incumbent(baselines()).exp == 0


def test_pairs_use_the_incumbents_most_recent_runs_first_then_new_ones_it_must_run():
    # The incumbent's runs in the order they were recorded: 44 was trained last, then 42, 43 first.
    recorded = {43: 1, 42: 1, 44: 1}
    assert next_pair_seed(recorded, {}, 42) == (44, False)
    assert next_pair_seed(recorded, {44: 1}, 42) == (42, False)
    assert next_pair_seed(recorded, {44: 1, 42: 1}, 42) == (43, False)
    assert next_pair_seed(recorded, {42: 1, 43: 1, 44: 1}, 42) == (45, True)
    assert first_seed(baselines(), 7) == 43 and first_seed([], 7) == 7


def test_the_incumbents_run_order_is_the_order_the_ledger_recorded_them():
    rows = baselines() + [{"exp": 2, "status": "discard", "seed": 43, "seed_runs": "43:1.0 42:1.0", "paired_exp": 0,
                           "incumbent_runs": "44:1.02"},
                          {"exp": 3, "status": "discard", "seed": 44, "seed_runs": "44:1.0 43:1.0", "paired_exp": 0,
                           "incumbent_runs": "42:1.011"}]  # seed 42 re-measured last: now the most recent
    assert list(incumbent(rows).runs) == [43, 44, 42] and incumbent(rows).runs[42] == 1.011
    assert first_seed(rows, 7) == 42


def test_a_failed_seed_is_never_asked_for_again():
    assert next_pair_seed({42: 1, 43: 1}, {43: 1}, 42, excluded=(42,)) == (44, True)
    assert next_pair_seed({42: 1}, {43: 1, 42: 1}, 42, excluded=(43,)) == (44, True)  # its unpaired run stays unpaired


def test_paired_noise_starts_at_the_safe_prior_and_moves_to_what_the_pairs_show():
    rows = baselines((1.00, 1.02))
    seed_sd = math.sqrt(2 * 0.01 ** 2)  # two values 0.02 apart
    noise = estimate_noise(rows, prior_df=1)
    assert noise.seed_sd == pytest.approx(seed_sd) and noise.seed_df == 1
    assert noise.paired_sd == pytest.approx(math.sqrt(2) * seed_sd) and noise.paired_df == 0
    # Four candidates whose gains on seeds 42 and 43 agree to within 0.002: the paired spread shrinks toward it.
    for exp in range(2, 6):
        rows.append({"exp": exp, "status": "discard", "seed": 42, "paired_exp": 0,
                     "seed_runs": format_runs({42: 1.00 + 0.001, 43: 1.02 - 0.001})})
    shrunk = estimate_noise(rows, prior_df=1)
    assert shrunk.paired_df == 4 and shrunk.paired_sd < noise.paired_sd / 2


def test_sprt_boundaries_and_outcomes():
    upper, lower = boundaries(0.05, 0.2)
    assert upper == pytest.approx(math.log(16)) and lower == pytest.approx(math.log(0.2 / 0.95))
    assert sprt([0.05], 0.01, 2.0, 0.05, 0.2).outcome == ACCEPT     # 5 sds better on one pair
    assert sprt([-0.01], 0.01, 2.0, 0.05, 0.2).outcome == REJECT    # one sd worse on one pair
    assert sprt([0.015], 0.01, 2.0, 0.05, 0.2).outcome == SPRT_CONTINUE
    assert sprt([0.015] * 2, 0.01, 2.0, 0.05, 0.2).outcome == SPRT_CONTINUE  # LLR 2.0 < ln 16
    assert sprt([0.015] * 3, 0.01, 2.0, 0.05, 0.2).outcome == ACCEPT  # the same gain three times settles it
    with pytest.raises(ValueError, match="decide.sequential"):
        boundaries(0.6, 0.5)


def test_clearly_worse_stops_after_one_pair_and_clearly_better_is_kept_at_once():
    rows = baselines()  # paired sd prior: sqrt(2) x 0.00707 = 0.01
    worse = judge_candidate(rows, SETTINGS, Trained({42: 1.03}, {}), 42)
    assert worse.status == "discard" and worse.paired_delta == pytest.approx(0.03) and "no gain" in worse.verdict
    better = judge_candidate(rows, SETTINGS, Trained({42: 0.94}, {}), 42)
    assert better.keep and better.paired_exp == 0 and better.paired_seeds == (42,)
    # The paired sd prior sqrt(2) x 0.00707 = 0.01 rests on one df (two baselines): judged widened by sqrt(1 + 1/1).
    assert better.paired_se == pytest.approx(0.01 * math.sqrt(2)) and better.best_val_bpb == pytest.approx(0.94)


def test_a_small_positive_gain_is_discarded_with_the_gain_the_test_looks_for():
    small = judge_candidate(baselines(), SETTINGS, Trained({42: 0.998}, {}), 42)  # +0.002, a 14th of effect x sd
    assert small.status == "discard" and small.paired_delta == pytest.approx(-0.002)
    assert "paired gain +0.002000 is nearer none than the +0.028284 the test looks for" in small.reason, small.reason
    assert "favours no gain over +0.028284" in small.verdict, small.verdict


def test_a_promising_candidate_asks_for_more_pairs_and_the_incumbent_runs_seeds_it_lacks():
    rows = baselines()
    # Judged paired sd 0.0141 (tests above): gains of 0.02 per pair need three pairs (LLR 0.83, 1.66, then 3.19).
    first = judge_candidate(rows, SETTINGS, Trained({42: 0.98}, {}), 42)
    assert first.status == CONTINUE and first.next_seed == 43 and not first.incumbent_runs_next
    second = judge_candidate(rows, SETTINGS, Trained({42: 0.98, 43: 0.99}, {}), 42)
    assert second.status == CONTINUE and second.next_seed == 44 and second.incumbent_runs_next
    third = judge_candidate(rows, SETTINGS, Trained({42: 0.98, 43: 0.99, 44: 0.985}, {44: 1.01}), 42)
    assert third.keep and third.paired_seeds == (42, 43, 44)
    assert third.best_val_bpb == pytest.approx((0.98 + 0.99 + 0.985) / 3)


def test_an_undecided_candidate_is_discarded_at_the_cap():
    rows = baselines()
    half = 0.01 * math.sqrt(2)  # half the tested effect (2 x the judged sd 0.0141): the LLR stays 0
    runs = {42: 1.0 - half, 43: 1.01 - half, 44: 1.004 - half, 45: 1.004 - half}
    capped = judge_candidate(rows, SETTINGS, Trained(runs, {44: 1.004, 45: 1.004}), 42)
    assert capped.status == "discard" and "max_pairs" in capped.reason and "cap" in capped.verdict


def test_a_round_winner_is_judged_without_its_lucky_first_pair():
    rows = baselines()
    alone = judge_candidate(rows, SETTINGS, Trained({42: 0.94}, {}), 42, selected_from=1)
    winner = judge_candidate(rows, SETTINGS, Trained({42: 0.94}, {}), 42, selected_from=4)
    assert alone.keep and winner.status == CONTINUE and winner.next_seed == 43
    assert judge_round({5: 0.9, 6: None, 7: 0.95}) == 5 and judge_round({6: None}) is None
    loser = round_loser(rows + [{"exp": 5, "status": "keep", "seed_runs": "42:0.9 43:0.9", "paired_exp": 0}],
                        {42: 0.95}, winner=5)
    assert loser.status == "discard" and loser.paired_exp == 0 and loser.paired_delta == pytest.approx(-0.05)
    assert loser.best_val_bpb == pytest.approx(0.9)  # the best is the winner's, which was kept


def test_failures_rule_single_baselines_and_the_margin_told_to_the_proposer():
    rows = baselines()
    failed = judge_candidate(rows, SETTINGS, Trained({42: 0.9}, {}), 42, failure="the candidate's paired run on seed 43 failed")
    assert failed.status == "discard" and "seed 43" in failed.error
    single = judge_candidate(rows, {**SETTINGS, "rule": "single"}, Trained({42: 0.98}, {}), 42)
    assert single.keep and single.threshold == pytest.approx(1.005 - 2 * 0.00707, abs=1e-4)
    assert judge_baseline(rows[:1], 43, 1.01).best_val_bpb == pytest.approx(1.005)
    margin = keep_margin(rows, SETTINGS)
    assert judge_candidate(rows, SETTINGS, Trained({42: 1.0 - margin * 1.01}, {}), 42).keep
    assert judge_candidate(rows, SETTINGS, Trained({42: 1.0 - margin * 0.99}, {}), 42).status == CONTINUE
    assert keep_margin([], SETTINGS) is None
