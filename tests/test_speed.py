"""The machine's speed taken out of the verdicts (research/judging/speed.py), the FLOP budget that load cannot skew and
the probe that measures the speed (training/loop.py), and the per-kind paired noise (research/judging/pairing.py)."""
from __future__ import annotations

import math

import pytest

from research.judging.verdict import CONTINUE, Trained, judge_candidate, min_pairs_to_keep
from research.judging.pairing import estimate_noise, format_runs
from research.judging.speed import adjusted_config_runs, reference_log_speed, speed_slope
from training.loop import Budget, SpeedProbe, budgeted_training

SEQ = {"alpha": 0.05, "beta": 0.2, "effect": 2.0, "max_pairs": 4, "prior_df": 1, "min_gain": 0.0,
       "kind_prior_df": 2, "unpaired_kinds": ["shape"], "noisier_ratio": 1.2, "noisier_min_pairs": 2}
SLOPE = -0.06  # val_bpb per unit ln(speed) in the world these rows come from


def settings(adjust=True, prior_slope=SLOPE, prior_runs=4):
    return {"rule": "sequential", "min_delta": 0.001, "sigma_k": 2.0, "sequential": SEQ,
            "speed": {"adjust": adjust, "prior_slope": prior_slope, "prior_runs": prior_runs}}


def measured(level, speed, slope=SLOPE):
    """What a run of a config at `level` (its val_bpb at speed 100) scores on a machine running at `speed`."""
    return level + slope * math.log(speed / 100.0)


def baselines(speeds=(100.0, 100.0), level=1.0, wobble=0.0005):
    """Two baselines whose seeds differ by `wobble` apart from what their speeds did to them."""
    rows = []
    for i, speed in enumerate(speeds):
        value = measured(level, speed) + (wobble if i else 0.0)
        rows.append({"exp": i, "status": "baseline", "seed": 42 + i, "val_bpb": value,
                     "seed_runs": format_runs({42 + i: value}), "seed_speeds": format_runs({42 + i: speed})})
    return rows


# --- the adjustment ---------------------------------------------------------------------------------------------

def test_a_change_that_does_nothing_on_a_slower_machine_is_not_judged_worse():
    rows = baselines()
    slow = {43: measured(1.0005, 90.0)}  # the same block as the baseline of seed 43, on a machine 10% slower
    trained = Trained(slow, {}, {43: 90.0})
    raw = judge_candidate(rows, settings(adjust=False), trained, 42)
    adjusted = judge_candidate(rows, settings(), trained, 42)
    assert raw.status == "discard" and raw.paired_delta == pytest.approx(-SLOPE * math.log(100 / 90))
    assert adjusted.paired_delta == pytest.approx(0.0, abs=1e-12) and adjusted.speed_slope == SLOPE
    # The raw figures stay as measured beside the adjusted ones.
    assert adjusted.val_bpb == pytest.approx(slow[43]) and adjusted.adjusted_val_bpb == pytest.approx(1.0005)


def test_a_real_gain_measured_on_a_slow_machine_is_kept_once_the_speed_is_out():
    rows = baselines()
    gain = 0.004  # four times the baselines' paired noise prior (sqrt(2) x 0.00035 seed sd ~ 0.0005)
    trained = Trained({43: measured(1.0005 - gain, 92.0)}, {}, {43: 92.0})
    assert judge_candidate(rows, settings(adjust=False), trained, 42).status == "discard"
    kept = judge_candidate(rows, settings(), trained, 42)
    assert kept.keep and kept.paired_delta == pytest.approx(-gain)


def test_the_slope_is_the_runs_own_within_config_slope_weighted_against_the_prior():
    # Four repeats of the default block at speeds 90..120 that move val_bpb by -0.02 per unit ln(speed).
    speeds = [90.0, 100.0, 110.0, 120.0]
    values = {42 + i: 1.0 - 0.02 * math.log(s / 100) for i, s in enumerate(speeds)}
    rows = [{"exp": 0, "status": "baseline", "seed": 42, "seed_runs": format_runs(values),
             "seed_speeds": format_runs({42 + i: s for i, s in enumerate(speeds)})}]
    xs = [math.log(s) for s in speeds]
    sxx = sum((x - sum(xs) / 4) ** 2 for x in xs)  # 0.046: these speeds spread ~21%, far more than a prior run's 1%
    for prior_runs in (3, 300):
        weight = prior_runs * 0.01 ** 2
        expected = (weight * -0.1 + sxx * -0.02) / (weight + sxx)
        assert speed_slope(rows, settings(prior_slope=-0.1, prior_runs=prior_runs)) == pytest.approx(expected)
    assert speed_slope(rows, settings(prior_slope=-0.1, prior_runs=3)) == pytest.approx(-0.0205, abs=5e-4)
    assert speed_slope(rows[:0], settings(prior_slope=-0.1)) == -0.1  # nothing measured: the prior
    assert speed_slope(rows, settings(adjust=False)) == 0.0
    # Adjusted to the first run's speed (90): each run reads as if trained at 90.
    assert reference_log_speed(rows) == pytest.approx(math.log(90.0))
    adjusted = adjusted_config_runs(rows, -0.02)[0]
    assert all(value == pytest.approx(1.0 - 0.02 * math.log(0.9)) for value in adjusted.values())


def test_a_slope_that_says_faster_is_worse_is_held_at_zero():
    speeds = {42: 90.0, 43: 110.0}
    rows = [{"exp": 0, "status": "baseline", "seed": 42, "seed_runs": format_runs({42: 1.0, 43: 1.05}),
             "seed_speeds": format_runs(speeds)}]  # the faster run scored worse: seed noise, not the speed
    assert speed_slope(rows, settings(prior_slope=-0.059, prior_runs=4)) == 0.0
    rows[0]["seed_runs"] = format_runs({42: 1.0, 43: 1.0})
    assert -0.059 < speed_slope(rows, settings(prior_slope=-0.059, prior_runs=4)) < 0.0


def test_runs_without_a_speed_are_left_as_measured():
    rows = baselines()
    rows[1]["seed_speeds"] = None
    assert adjusted_config_runs(rows, SLOPE)[0][43] == rows[1]["val_bpb"]


# --- the FLOP budget and the probe ------------------------------------------------------------------------------

def test_a_flop_budget_buys_fewer_steps_for_a_bigger_model_or_batch():
    per_token, tokens = 11_652_480.0, 4096
    budget = Budget.from_config({"kind": "flops", "flops": per_token * tokens * 151, "seconds": 60})
    budget.resolve(per_token, tokens)
    assert budget.steps == 151 and budget.counts_steps and budget.progress(75, 999.0) == pytest.approx(75 / 151)
    assert budget.has_room(150, 1e9) and not budget.has_room(151, 0.0)  # the clock does not matter
    just_short = Budget.from_config({"kind": "flops", "flops": per_token * tokens * 151 - 1})
    just_short.resolve(per_token, tokens)
    assert just_short.steps == 150
    bigger = Budget.from_config({"kind": "flops", "flops": per_token * tokens * 151})
    bigger.resolve(2 * per_token, tokens)
    assert bigger.steps == 75 and "FLOPs (75 steps)" in bigger.describe()


@pytest.mark.parametrize("config, message", [
    ({"kind": "flops"}, "budget.flops must be a positive number"),
    ({"kind": "flops", "flops": float("inf")}, "budget.flops must be a positive number"),
    ({"kind": "flops", "flops": 1e12, "seconds": -5}, "must not be negative"),
    ({"kind": "minutes"}, "budget.kind must be one of time, flops, steps"),
])
def test_a_bad_budget_is_one_sentence(config, message):
    with pytest.raises(ValueError, match=message):
        Budget.from_config(config)


def test_the_probe_samples_at_its_interval_off_the_budgets_clock(monkeypatch):
    clock = iter([0.0, 0.02, 1.0, 1.05, 2.0, 2.04])  # three probes: 20, 50 and 40 ms for 1 GFLOP
    monkeypatch.setattr("training.loop.time.perf_counter", lambda: next(clock))
    probe = SpeedProbe(lambda: None, 1e9, every_seconds=5.0)
    for elapsed in (0.0, 4.9, 5.0, 9.99, 10.0):
        probe.maybe_sample(elapsed)
    assert probe.rates == pytest.approx([50.0, 20.0, 25.0]) and probe.gflops == pytest.approx(25.0)  # the median


def test_a_training_with_a_probe_charges_the_budget_only_for_its_steps():
    probed = []
    probe = SpeedProbe(lambda: probed.append(1), 1e9, every_seconds=1e-12)
    budget = Budget.from_config({"kind": "steps", "steps": 4})
    groups = [{"lr": 0.1, "initial_lr": 0.1, "weight_decay": 0.0, "initial_weight_decay": 0.0}]
    schedule = {"warmup_frac": 0.0, "warmdown_frac": 0.0, "final_lr_frac": 0.0}
    result = budgeted_training(lambda: 1.0, groups, budget, schedule, None, 8192, 16, 60.0, probe)
    assert result.steps == 4 and len(probed) == 4 and probe.gflops is not None


# --- noise per kind of change ------------------------------------------------------------------------------------

def kind_rows(spread_by_kind):
    """Baselines, then per kind two candidates each paired on seeds 42 and 43, whose two gains differ by `spread`."""
    rows = [{"exp": i, "status": "baseline", "seed": 42 + i, "val_bpb": 1.0 + 0.001 * i,
             "seed_runs": format_runs({42 + i: 1.0 + 0.001 * i})} for i in range(2)]
    exp = 2
    for kind, spread in spread_by_kind.items():
        for _ in range(2):
            runs = {42: 1.0 + spread / 2, 43: 1.001 - spread / 2}
            rows.append({"exp": exp, "status": "discard", "seed": 42, "paired_exp": 0, "change_kind": kind,
                         "seed_runs": format_runs(runs)})
            exp += 1
    return rows


def test_a_kind_whose_pairs_spread_more_is_judged_with_its_own_larger_noise_and_needs_two_pairs():
    rows = kind_rows({"optimizer": 0.0002, "shape": 0.004})
    pooled = estimate_noise(rows, 1)
    shape = estimate_noise(rows, 1, kind="shape")
    optimizer = estimate_noise(rows, 1, kind="optimizer")
    assert optimizer.paired_sd < pooled.paired_sd < shape.paired_sd and shape.paired_df == 2
    assert shape.pooled_sd == pytest.approx(pooled.paired_sd)
    assert min_pairs_to_keep(SEQ, shape) == 2 and min_pairs_to_keep(SEQ, optimizer) == 1
    big_gain = Trained({43: 0.99})
    assert judge_candidate(rows, settings(adjust=False), big_gain, 42, kind="optimizer").keep
    noisy = judge_candidate(rows, settings(adjust=False), big_gain, 42, kind="shape")
    assert noisy.status == CONTINUE and "needs 2 pairs" in noisy.verdict and "(shape changes)" in noisy.verdict


def test_the_noisier_line_sits_at_noisier_ratio_times_the_pooled_figure():
    from research.judging.pairing import Noise

    assert min_pairs_to_keep(SEQ, Noise(0.01, 1, 0.0121, 0, 0.01)) == 2
    assert min_pairs_to_keep(SEQ, Noise(0.01, 1, 0.0119, 0, 0.01)) == 1


def test_an_unpaired_kind_starts_from_the_safe_prior_before_the_run_has_seen_it():
    rows = kind_rows({"optimizer": 0.0002})
    pooled = estimate_noise(rows, 1)
    unseen = estimate_noise(rows, 1, kind="shape", kind_unpaired=True)
    assert unseen.paired_df == 0 and unseen.paired_sd == pytest.approx(math.sqrt(2) * pooled.seed_sd)
    assert estimate_noise(rows, 1, kind="attention").paired_sd == pytest.approx(pooled.paired_sd)


def test_a_slope_fitted_to_two_baselines_does_not_make_the_noise_vanish():
    # A loaded CPU under a time budget: the baselines' speeds differ fivefold, so the run's own slope fits them
    # exactly and their adjusted values agree. The noise then falls back to their raw spread, not to zero.
    rows = baselines(speeds=(140.0, 730.0), wobble=0.0)
    rows[1]["val_bpb"] -= 0.3  # and seed noise the line absorbs
    rows[1]["seed_runs"] = format_runs({43: rows[1]["val_bpb"]})
    lost = __import__("research.judging.speed", fromlist=["fitted_df"]).fitted_df(rows, settings())
    assert lost > 0.99
    noise = estimate_noise(rows, 1, adjusted_config_runs(rows, speed_slope(rows, settings())), fitted_df=lost)
    raw = estimate_noise(rows, 1)
    assert speed_slope(rows, settings()) < -0.2 and noise.seed_sd == pytest.approx(raw.seed_sd)
    assert noise.paired_sd > 0.1
    modest = Trained({43: rows[1]["val_bpb"] - 0.05}, {}, {43: 730.0})
    assert judge_candidate(rows, settings(), modest, 42).status != "keep"
