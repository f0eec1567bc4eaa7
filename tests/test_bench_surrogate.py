"""bench/landscape.py (the real trainings a surrogate is fitted from), bench/surrogate.py (the fit) and
bench/surrogate_replay.py (proposers replayed on it through the product's own loop and keep rule)."""
from __future__ import annotations

import csv
import itertools
import json
import math
import random

import pytest

from bench import landscape as collector
from bench.surrogate import DEFAULT_BLOCK, describe, fit, read_rows, with_changes
from bench.paired_stats import pairwise_lines, wilcoxon
from bench.surrogate_replay import replay
from flows.compose import CONF_DIR, compose
from research.proposing.space import load_space

SPACE = load_space(CONF_DIR / "space.yaml")
DEFAULTS = compose(["preset=cpu"], auto=False)["hparams"]
DEFAULT_BY_SEED = {1000: 1.750, 1001: 1.760, 1002: 1.740, 1003: 1.754}


def row(changes, seed, val_bpb=None):
    block = ";".join(f"{k}={v}" for k, v in changes) or DEFAULT_BLOCK
    return {"block": block, "changes": json.dumps(changes), "seed": str(seed),
            "status": "crash" if val_bpb is None else "ok", "val_bpb": "" if val_bpb is None else repr(val_bpb)}


def table(effects: dict, noise: dict | None = None) -> list[dict]:
    """The default on four seeds, then each (key, value) -> gain (None: crash) on seeds 1000 and 1001, the
    second seed's gain off by noise[(key, value)]."""
    rows = [row([], seed, value) for seed, value in DEFAULT_BY_SEED.items()]
    for (key, value), gain in effects.items():
        for seed in (1000, 1001):
            extra = (noise or {}).get((key, value), 0.0) if seed == 1001 else 0.0
            rows.append(row([[key, value]], seed, None if gain is None else DEFAULT_BY_SEED[seed] + gain + extra))
    return rows


# --- the fit ---------------------------------------------------------------------------------------------------

def test_a_log_key_is_interpolated_on_its_log_axis_through_the_default_and_flat_beyond():
    # matrix_lr's default is 0.04: gains -0.02 at 0.08 and +0.03 at 0.01
    landscape = fit(table({("optim.matrix_lr", 0.08): -0.02, ("optim.matrix_lr", 0.01): 0.03}), SPACE, DEFAULTS)
    effect = landscape.effects["optim.matrix_lr"]
    assert effect.gain(0.04) == 0.0 and effect.gain(0.08) == pytest.approx(-0.02)
    # sqrt(0.04 * 0.08) is halfway on the log axis (a linear axis would put 0.06 there)
    assert effect.gain(math.sqrt(0.04 * 0.08)) == pytest.approx(-0.01)
    assert effect.gain(0.02) == pytest.approx(0.015)  # halfway between 0.01 and 0.04 in log space
    assert effect.gain(0.5) == pytest.approx(-0.02) and effect.gain(0.001) == pytest.approx(0.03)
    assert landscape.default_val_bpb == pytest.approx(sum(DEFAULT_BY_SEED.values()) / 4)


def test_a_value_nearer_a_crash_than_a_finished_training_crashes():
    # depth 4 (default) finished; depth 8 crashed: 5 and 6 are nearer 4, 6.1 and 7 nearer 8
    landscape = fit(table({("model.depth", 8): None}), SPACE, DEFAULTS)
    effect = landscape.effects["model.depth"]
    assert effect.gain(5) == 0.0 and effect.gain(6) == 0.0
    assert effect.gain(7) is None and effect.gain(12) is None
    block = with_changes(DEFAULTS, [["model.depth", 7]])
    assert landscape.true_val_bpb(block, DEFAULTS) is None


def test_categories_trained_are_looked_up_and_untrained_ones_get_their_mean():
    landscape = fit(table({("model.activation", "gelu"): 0.01, ("model.window_pattern", "L"): 0.004,
                           ("model.window_pattern", "SL"): 0.002}), SPACE, DEFAULTS)
    assert landscape.effects["model.activation"].gain("gelu") == pytest.approx(0.01)
    assert landscape.effects["model.activation"].gain("relu2") == 0.0  # the default
    assert landscape.effects["model.window_pattern"].gain("SSSSL") == pytest.approx(0.003)


def test_several_changes_add_up_and_the_run_noise_comes_from_the_seeds_disagreement():
    # each gain differs between its two seeds by 0.004: E[(d1 - d2)^2] = 4 run_sd^2 gives run_sd 0.002
    effects = {("optim.matrix_lr", 0.08): -0.02, ("schedule.warmdown_frac", 0.75): -0.01}
    landscape = fit(table(effects, {key: 0.004 for key in effects}), SPACE, DEFAULTS)
    assert landscape.run_sd == pytest.approx(0.002)
    block = with_changes(DEFAULTS, [["optim.matrix_lr", 0.08], ["schedule.warmdown_frac", 0.75]])
    expected = landscape.default_val_bpb + (-0.02 + 0.002) + (-0.01 + 0.002)  # each gain, its two seeds' mean
    assert landscape.true_val_bpb(block, DEFAULTS) == pytest.approx(expected)
    assert landscape.interaction_sd == 0.0  # no two-change block was trained
    # the default's four seeds: deviations -0.001, 0.009, -0.011, 0.003 from 1.751: sqrt(212e-6 / 3)
    assert landscape.seed_sd == pytest.approx(math.sqrt(212e-6 / 3))


def test_the_interaction_is_what_two_change_blocks_measured_beyond_the_sum_and_the_noise():
    effects = {("optim.matrix_lr", 0.08): -0.02, ("schedule.warmdown_frac", 0.75): -0.01}
    rows = table(effects, {key: 0.004 for key in effects})  # run_sd 0.002
    pair = [["optim.matrix_lr", 0.08], ["schedule.warmdown_frac", 0.75]]
    additive = -0.02 + 0.002 - 0.01 + 0.002
    # 0.008 and 0.012 beyond the sum: their mean 0.010, and the seeds disagree by 0.004 as the others do
    rows += [row(pair, seed, DEFAULT_BY_SEED[seed] + additive + extra) for seed, extra in ((1000, 0.008), (1001, 0.012))]
    landscape = fit(rows, SPACE, DEFAULTS)
    # 0.010 beyond the sum, less the noise of a mean of two paired gains (2 x 0.002^2 / 2)
    assert landscape.interaction_sd == pytest.approx(math.sqrt(0.010 ** 2 - 0.002 ** 2))


def test_a_trainings_cost_is_the_mean_training_time_of_the_finished_ones():
    rows = table({("optim.matrix_lr", 0.08): -0.02, ("model.depth", 8): None})
    for r, seconds in zip(rows, ("40.0", "50.0", "", "60.0", "30.0", "30.0", "99.0", "99.0")):
        r["training_seconds"] = seconds  # the last two are the crashed depth 8: not a training's cost
    assert fit(rows, SPACE, DEFAULTS).seconds_per_training == pytest.approx((40 + 50 + 60 + 30 + 30) / 5)
    assert fit(table({}), SPACE, DEFAULTS).seconds_per_training is None


def test_the_description_lists_each_trained_key_best_first_in_its_own_words():
    landscape = fit(table({("model.depth", 3): -0.1, ("model.depth", 8): None, ("optim.matrix_lr", 0.08): -0.02,
                           ("model.activation", "gelu"): 0.01}), SPACE, DEFAULTS)
    lines = describe(landscape)
    assert lines[0].startswith("default val_bpb 1.7510; seed sd 0.0084, run sd 0.0000") and "12 trainings" in lines[0]
    assert lines[1:] == ["  model.depth: 3: -0.1000, 8: crash", "  optim.matrix_lr: 0.08: -0.0200",
                         "  model.activation: gelu: +0.0100"]


def test_fewer_than_two_default_seeds_is_one_clear_sentence():
    with pytest.raises(ValueError, match="default block on at least 2 seeds"):
        fit([row([], 1000, 1.75)], SPACE, DEFAULTS)


# --- the collector ---------------------------------------------------------------------------------------------

def test_the_grid_steps_log_keys_by_factors_and_flips_bools_within_bounds():
    assert collector.grid(SPACE["optim.matrix_lr"], 0.04) == [0.01, 0.02, 0.08, 0.16]
    assert collector.grid(SPACE["model.qk_norm"], True) == [False]
    assert collector.grid(SPACE["model.activation"], "relu2") == ["gelu", "swiglu"]
    # a small int gets its neighbours first (a step of 10% or more); values outside [min, max] are dropped
    assert collector.grid(SPACE["model.depth"], 4) == [3, 5, 12, 21, 29]
    assert collector.grid(SPACE["model.depth"], 10)[:2] == [9, 11]
    assert collector.grid(SPACE["model.depth"], 11)[:1] == [4]  # 10 or 12 is a step under 10%: no neighbours
    # neighbours 0 (below the min of 1) and 2, then 1 + 7 x (0.1, 0.35, 0.65, 0.9) rounded: 2 (again), 3, 6, 7
    assert collector.grid(SPACE["model.mlp_ratio"], 1) == [2, 3, 6, 7]


def test_the_plan_starts_with_the_default_spreads_over_every_key_and_leaves_out_what_the_constraints_reject():
    blocks = collector.plan(SPACE, DEFAULTS, 256, two_change=150)
    assert blocks[0] == []
    first_round = [changes[0][0] for changes in blocks[1:30]]
    assert first_round[:3] == ["model.depth", "model.aspect_ratio", "model.head_dim"]
    # 4 heads (width 128, head_dim 32): a kv_head_ratio of 8 does not divide them, 4 does
    singles = [list(c[0]) for c in blocks if len(c) == 1]
    assert ["model.kv_head_ratio", 8] not in singles and ["model.kv_head_ratio", 4] in singles
    pairs = [changes for changes in blocks if len(changes) == 2]
    assert len(pairs) == 150 and all(a[0] != b[0] for a, b in pairs)  # each pair: two keys


def test_the_collector_appends_a_row_per_training_and_a_second_call_trains_only_what_is_left(tmp_path, monkeypatch):
    trained = []

    def fake_train(cfg, data, block, seed, threads):
        trained.append((json.dumps(block, sort_keys=True), seed))
        if block["model"]["depth"] == 3:
            return {"status": "crash", "reason": "out of memory", "steps": 0}
        return {"status": "ok", "val_bpb": "1.750000", "steps": 150, "training_seconds": "50.0", "reason": ""}

    monkeypatch.setattr(collector, "train", fake_train)
    prepared = []
    monkeypatch.setattr(collector, "prepare_data", lambda name, data_dir: prepared.append(name) or {"dataset": name})
    out = tmp_path / "landscape.csv"
    collector.main(["--out", str(out), "--limit", "5"])
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["block"], r["seed"]) for r in rows] == [("default", "1000"), ("default", "1001"), ("default", "1002"),
                                                      ("default", "1003"), ("model.depth=3", "1000")]
    assert rows[-1]["status"] == "crash" and rows[-1]["reason"] == "out of memory"
    collector.main(["--out", str(out), "--limit", "2"])  # a resume: the next two, no repeat, one header
    rows = read_rows(out)
    assert [(r["block"], r["seed"]) for r in rows][5:] == [("model.depth=3", "1001"), ("model.aspect_ratio=33", "1000")]
    assert len(trained) == 7 and len(set(trained)) == 7
    assert prepared == ["bundled", "bundled"]  # each call prepares the dataset as `autoresearch run` does


# --- the replay ------------------------------------------------------------------------------------------------

def test_wilcoxon_matches_a_count_over_every_sign_assignment_ties_included():
    rng = random.Random(3)
    cases = [[rng.choice((-1, 1)) * rng.uniform(0.1, 5) for _ in range(n)] for n in (1, 4, 7, 9)]
    cases += [[2, 2, 2, -1], [1, -1, 1, 3, -3, 0.5], [0.3, -0.3, 0.3, 0.3, 1.2, -2]]  # ties share their mean rank
    for diffs in cases:
        n = len(diffs)
        # a size's rank: the sizes below it, plus the middle of its tie group
        ranks = [sum(abs(y) < abs(x) for y in diffs) + (sum(abs(y) == abs(x) for y in diffs) + 1) / 2 for x in diffs]
        observed = sum(r for r, x in zip(ranks, diffs) if x > 0)
        sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=n)]
        extreme = min(observed, sum(ranks) - observed)
        expected = min(1.0, 2 * sum(s <= extreme + 1e-9 for s in sums) / len(sums))
        assert wilcoxon(diffs) == pytest.approx(expected), diffs
    assert wilcoxon([2, 2, 2, -1]) == pytest.approx(0.25)  # 4 of the 16 assignments are as extreme
    assert wilcoxon([0.0, 0.0]) == 1.0


def test_wilcoxon_over_20_pairs_is_the_normal_approximation_of_the_exact_count():
    diffs = [(-1) ** (i % 3 == 0) * (i + 1) for i in range(24)]  # ranks 1..24, every third one negative
    plus = sum(i + 1 for i in range(24) if i % 3 != 0)
    ways = {0: 1}  # the exact null: how many sign assignments give each positive-rank sum
    for rank in range(1, 25):
        ways = {total: ways.get(total, 0) + ways.get(total - rank, 0) for total in range(sum(range(1, rank + 1)) + 1)}
    extreme = min(plus, 300 - plus)
    exact = 2 * sum(count for total, count in ways.items() if total <= extreme) / 2 ** 24
    assert 0.02 < exact < 0.2 and wilcoxon(diffs) == pytest.approx(exact, abs=0.005)


def test_a_replay_keeps_a_clear_gain_and_scores_the_incumbent_by_its_true_value(tmp_path):
    # matrix_lr x2 gains 0.05 (about 17 run sds): the local proposer tries the learning rates first
    rows = table({("optim.matrix_lr", 0.08): -0.05, ("optim.matrix_lr", 0.16): -0.05,
                  ("optim.matrix_lr", 0.02): 0.02}, {("optim.matrix_lr", 0.08): 0.012})
    landscape = fit(rows, SPACE, DEFAULTS)
    first = replay(landscape, "local", 0, 6, tmp_path / "a", [])
    assert [r["status"] for r in first][:2] == ["baseline", "baseline"] and len(first) == 8
    kept = [r for r in first if r["status"] == "keep"]
    assert kept, "a 17-sd gain was not kept in 6 proposals"
    assert first[-1]["gain"] > 0.04 and first[-1]["trainings"] >= len(first)
    again = replay(landscape, "local", 0, 6, tmp_path / "b", [])
    assert again == first  # the same base seed replays the same run


def test_a_crash_region_is_a_crash_row_and_counted(tmp_path):
    # every matrix_lr the local proposer may try crashes (the nearest trained value to it crashed)
    crashing = {("optim.matrix_lr", value): None for value in (0.01, 0.02, 0.08, 0.16)}
    landscape = fit(table(crashing), SPACE, DEFAULTS)
    rows = replay(landscape, "local", 1, 6, tmp_path, [])
    crashes = [r for r in rows if r["status"] == "crash"]
    assert crashes and rows[-1]["crashes"] == len(crashes) and rows[-1]["gain"] == pytest.approx(0.0)


@pytest.mark.slow
def test_a_real_training_is_a_row_and_a_failing_one_a_crash_with_its_reason_and_no_folder_is_left(tiny_dataset, tmp_path,
                                                                                               monkeypatch):
    from tests.test_flow_research import TINY_RUN

    monkeypatch.setattr(collector.tempfile, "tempdir", str(tmp_path))  # where the training folders go
    cfg = compose(TINY_RUN, auto=False)
    data = {"shard_dir": str(tiny_dataset["shard_dir"]), "tokenizer_dir": str(tiny_dataset["tokenizer_dir"]),
            "data_version": tiny_dataset["manifest"]["data_version"]}
    done = collector.train(cfg, data, cfg["hparams"], 1000, 1)
    assert done["status"] == "ok" and done["steps"] == 4 and 1.0 < float(done["val_bpb"]) < 10.0
    # 1,000 tokens per step is no multiple of 8 sequences of 128: the training process refuses the block
    broken = with_changes(cfg["hparams"], [["batch.total_batch_tokens", 1000]])
    failed = collector.train(cfg, data, broken, 1000, 1)
    assert failed["status"] == "crash" and "1000" in failed["reason"]
    assert list(tmp_path.iterdir()) == []
