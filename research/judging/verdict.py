"""The keep/discard judgement, whole, as pure functions over the run's ledger rows and the `decide` settings.

The flow asks and records; it never judges. The answers are one type, `Decision`:
- judge_baseline / judge_failure: a baseline run, a crash or a skipped proposal.
- judge_single_run: rule `single`'s verdict on one run against the best.
- judge_candidate: a candidate's verdict against the incumbent (the last keep, or the default block), from
  the runs so far; `continue` names the seed of the next pair, and whether the incumbent must run it too.
- judge_round: which member of a parallel round may be kept (only the best; the others are discarded,
  since none of them was built on the round's winner), and judge_candidate then confirms that one.

Two rules (decide.rule; `KEEP_RULES` below maps the name to its class, `Evidence` is what it judges):
- `sequential` (default): paired and sequential. Every candidate run uses a seed the incumbent also ran, so
  the seed's own offset cancels in the gain (incumbent - candidate on that seed); the gains, with the machine's
  measured speed taken out (research/judging/speed.py), feed Wald's SPRT (research/judging/sprt.py) with the paired noise of the
  change's kind (research/judging/pairing.py), widened for its few degrees of freedom, one pair at a time, up to
  decide.sequential.max_pairs. A parallel round's winner is the best of several noisy first pairs, so its
  first pair is biased toward luck: its verdict rests on the pairs after it.
- `single`: the rule before issue 15, kept for comparison (bench/decide_sim.py): one run, kept when
  val_bpb < best - max(min_delta, sigma_k * sigma), sigma the spread of the repeated baselines.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

from common.registry import Registry
from research.errors import ConfigurationError, ResearchStopped
from research.judging.pairing import estimate_noise, format_runs, incumbent, next_pair_seed, paired_gains
from research.judging.speed import adjust_runs, adjusted_config_runs, fit_speed, reference_log_speed
from research.judging.sprt import ACCEPT, REJECT, sprt

CONTINUE = "continue"


@dataclass(frozen=True)
class Decision:
    status: str                        # baseline | keep | discard | crash | skip | continue (train the next pair)
    reason: str
    val_bpb: float | None = None       # this config's mean over its runs
    best_val_bpb: float | None = None  # the incumbent's mean after this decision
    delta: float | None = None         # val_bpb - the best before (unpaired; negative = better)
    threshold: float | None = None     # rule single: val_bpb had to be below this
    paired_exp: int | None = None      # the incumbent it was paired with
    paired_seeds: tuple = ()
    paired_delta: float | None = None  # mean of candidate - incumbent over the paired seeds (negative = better)
    paired_se: float | None = None     # its standard error: paired noise / sqrt(pairs)
    verdict: str | None = None         # the test's own words
    next_seed: int | None = None       # status continue: the seed of the next pair...
    incumbent_runs_next: bool = False  # ...and whether the incumbent lacks it and must train it first
    pairs_left: int = 0                # ...and how many pairs max_pairs still allows, that one included
    error: str | None = None
    adjusted_val_bpb: float | None = None  # val_bpb at the run's reference machine speed (research/judging/speed.py)
    speed_slope: float | None = None   # val_bpb per unit ln(machine speed) the gains were adjusted with (0: none)
    change_kind: str | None = None     # the kind whose paired noise judged it (conf/space.yaml kinds)

    @property
    def keep(self) -> bool:
        return self.status == "keep"


@dataclass(frozen=True)
class Trained:
    """What a decision has trained so far, by seed: the candidate's runs and the incumbent's runs made for it,
    with each run's machine speed where it measured one, and the seeds whose run failed (never asked again)."""

    candidate: dict
    incumbent_new: dict = field(default_factory=dict)
    candidate_speeds: dict = field(default_factory=dict)
    incumbent_speeds: dict = field(default_factory=dict)
    failed_seeds: tuple = ()


def finite_or_none(value: Any) -> float | None:
    """The value as a float, or None when it is missing, not a number, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# Training failures (training/loop.py TrainingFailure kinds) that the same block would meet on any seed: an invalid
# block, a step that cannot fit the budget, unreadable data, a block too large for the device's memory.
REPEATING_FAILURES = frozenset({"config", "budget", "data", "oom"})


def failure_repeats(metrics: dict | None, evaluation: dict | None) -> bool:
    """Whether a failed training or evaluation would fail again on another seed. A killed or hung process, a NaN
    or an explosion on one seed, a failed evaluation may not: those are worth one more try on another seed."""
    if metrics and metrics.get("status") not in (None, "ok"):
        return metrics.get("kind") in REPEATING_FAILURES
    return False


def _finite(values: Iterable) -> list[float]:
    return [v for v in map(finite_or_none, values) if v is not None]


def noise_sigma(values: list[float]) -> float | None:
    """Sample standard deviation (n-1) of repeated runs of one config; None with fewer than 2 values."""
    clean = _finite(values)
    return statistics.stdev(clean) if len(clean) >= 2 else None


def baseline_best(values: list[float]) -> float | None:
    """The best-so-far after repeated baselines: their mean, not their minimum (biased low by the noise)."""
    clean = _finite(values)
    return statistics.fmean(clean) if clean else None


def keep_threshold(best: float, sigma: float | None, min_delta: float, sigma_k: float) -> float:
    margin = max(min_delta, sigma_k * sigma if sigma is not None else 0.0)
    return best - margin


def judge_single_run(val_bpb: float | None, best: float, sigma: float | None, min_delta: float = 0.0,
           sigma_k: float = 2.0) -> Decision:
    """Rule `single`: keep when val_bpb < best - max(min_delta, sigma_k * sigma); lower val_bpb is better."""
    if best is None or not math.isfinite(best):
        raise ValueError("judge_single_run() needs a finite best val_bpb; record a baseline first.")
    threshold = keep_threshold(best, sigma, min_delta, sigma_k)
    if val_bpb is None or not math.isfinite(val_bpb):
        return Decision("discard", f"No finite val_bpb ({val_bpb}); discarded.", threshold=threshold)
    delta = val_bpb - best
    margin = (f"min_delta {min_delta:g} (no noise estimate)" if sigma is None
              else f"max(min_delta {min_delta:g}, {sigma_k:g} sigma = {sigma_k * sigma:.6f})")
    if val_bpb < threshold:
        reason = f"val_bpb {val_bpb:.6f} beats the best {best:.6f} by {-delta:.6f}, more than {margin}."
        return Decision("keep", reason, val_bpb, val_bpb, delta, threshold)
    if delta < 0:
        reason = (f"val_bpb {val_bpb:.6f} is better than the best {best:.6f} by {-delta:.6f}, "
                  f"within the noise margin {margin}; discarded.")
    else:
        reason = f"val_bpb {val_bpb:.6f} is not better than the best {best:.6f}; discarded."
    return Decision("discard", reason, val_bpb, best, delta, threshold)


def judge_baseline(rows: list[dict], seed: int, val_bpb: float) -> Decision:
    """A repeat of the default block: it joins the incumbent's runs, whose mean becomes the best."""
    runs = {**incumbent([r for r in rows if r.get("status") == "baseline"]).runs, int(seed): float(val_bpb)}
    best = statistics.fmean(runs.values())
    return Decision("baseline", f"baseline on seed {seed}", val_bpb, best, paired_seeds=(int(seed),))


def judge_failure(rows: list[dict], status: str, error: str | None) -> Decision:
    """A crash (nothing measured) or a skip (nothing proposed): the best stays where it was."""
    return Decision(status, error or status, best_val_bpb=incumbent(rows).mean, error=error)


def first_seed(rows: list[dict], default_seed: int, control_every: int = 0) -> int:
    """The seed of a candidate's first run: the incumbent's most recent seed, so the pair costs no extra training;
    but when the incumbent has not run for `control_every` experiments, a new seed, which the incumbent then
    trains too: a control run, so that the pairs stay recent and research.judging.drift sees how far it moved."""
    runs = incumbent(rows).runs
    if control_every > 0 and runs and experiments_since_incumbent_ran(rows) >= control_every:
        return max([*runs, int(default_seed)]) + 1
    return next_pair_seed(runs, {}, default_seed)[0]


def experiments_since_incumbent_ran(rows: list[dict]) -> int:
    """Experiments recorded after the last one that trained the incumbent (its own row or a pair's run of it)."""
    exp = incumbent(rows).exp
    ran = [int(row["exp"]) for row in rows if row.get("status") not in ("crash", "skip") and (
        (exp == 0 and row.get("status") == "baseline") or int(row["exp"]) == exp
        or (row.get("paired_exp") == exp and row.get("incumbent_runs")))]
    return sum(1 for row in rows if int(row["exp"]) > max(ran, default=-1))


def judge_round(outcomes: dict[int, float | None]) -> int | None:
    """The member of a parallel round that may be kept: the lowest finite val_bpb of the first runs (all on the
    same incumbent seed, so the lowest val_bpb is the best paired gain); None when none finished."""
    scored = [(value, exp) for exp, value in outcomes.items() if finite_or_none(value) is not None]
    return min(scored)[1] if scored else None


def round_loser(rows: list[dict], candidate: dict[int, float], winner: int | None) -> Decision:
    """A round member that is not the round's best: discarded whatever its gain. Its paired figures are against
    the round's starting incumbent (the rows without the winner, the only member that can have been kept)."""
    reference = incumbent([row for row in rows if int(row["exp"]) != winner])
    gains = paired_gains(candidate, reference.runs)
    mean = statistics.fmean(candidate.values()) if candidate else None
    return Decision("discard", f"not the round's best (exp {winner} was); discarded.", mean, incumbent(rows).mean,
                    None if mean is None or reference.mean is None else mean - reference.mean,
                    paired_exp=reference.exp, paired_seeds=tuple(s for s, _ in gains),
                    paired_delta=-statistics.fmean(g for _, g in gains) if gains else None,
                    verdict="round: not the best member")


def judge_candidate(rows: list[dict], settings: dict, trained: Trained, default_seed: int, selected_from: int = 1,
                    failure: str | None = None, kind: str | None = None) -> Decision:
    """The verdict on a candidate from what this decision trained so far (`trained`: the candidate's runs and the
    incumbent's runs made for it). `selected_from` > 1: the candidate won a round of that many first runs.
    `failure`: a run of this decision failed; what was measured is recorded, nothing is kept. `kind`: the
    change's kind (conf/space.yaml kinds), whose own paired noise judges it.

    Raw figures (val_bpb, best_val_bpb, delta) are as measured; the paired figures the test reads are adjusted to
    the run's reference machine speed (research/judging/speed.py; unchanged when the adjustment is off)."""
    candidate, incumbent_new = trained.candidate, trained.incumbent_new
    slope, slope_df = fit_speed(rows, settings)
    by_config = adjusted_config_runs(rows, slope)
    reference = reference_log_speed(rows)
    base, measured = incumbent(rows, by_config), incumbent(rows)
    incumbent_runs = {**base.runs, **adjust_runs(incumbent_new, trained.incumbent_speeds, slope, reference)}
    adjusted = adjust_runs(candidate, trained.candidate_speeds, slope, reference)
    gains = paired_gains(adjusted, incumbent_runs)
    mean = statistics.fmean(candidate.values()) if candidate else None
    measured_incumbent = {**measured.runs, **incumbent_new}
    figures = dict(val_bpb=mean,
                   best_val_bpb=statistics.fmean(measured_incumbent.values()) if measured_incumbent else None,
                   delta=None if mean is None or measured.mean is None else mean - measured.mean, paired_exp=base.exp,
                   paired_seeds=tuple(seed for seed, _ in gains),
                   paired_delta=-statistics.fmean(g for _, g in gains) if gains else None,
                   adjusted_val_bpb=statistics.fmean(adjusted.values()) if adjusted else None,
                   speed_slope=slope, change_kind=kind)
    if failure is not None or (mean is None and not trained.failed_seeds):
        reason = failure or "no finite val_bpb"
        return Decision("discard", f"{reason}; nothing kept.", error=reason, **figures)
    evidence = Evidence(rows, settings, candidate, adjusted, incumbent_runs, measured.mean, gains, figures, by_config,
                        slope_df, kind, default_seed, selected_from, trained.failed_seeds)
    return keep_rule(settings).judge(evidence)


@dataclass(frozen=True)
class Evidence:
    """What a keep rule judges a candidate on, computed once by judge_candidate for every rule."""

    rows: list[dict]
    settings: dict                  # the decide block
    candidate: dict                 # the candidate's runs by seed, as measured
    adjusted: dict                  # the same at the run's reference machine speed (research/judging/speed.py)
    incumbent_runs: dict            # the incumbent's runs by seed (adjusted), those made for this decision included
    measured_incumbent: float | None  # the incumbent's mean as measured, before this decision
    gains: list                     # (seed, incumbent - candidate) on the seeds both ran, adjusted
    figures: dict                   # the Decision fields every verdict reports
    by_config: dict                 # every config's adjusted runs (research.judging.speed.adjusted_config_runs)
    slope_df: float                 # degrees of freedom the speed slope took from the run's repeats
    kind: str | None                # the change's kind (conf/space.yaml kinds)
    default_seed: int
    selected_from: int              # > 1: the candidate won a round of that many first runs
    failed_seeds: tuple             # seeds whose run failed in this decision


class SequentialRule:
    """decide.rule=sequential (the default): paired gains, Wald's SPRT with the kind's paired noise."""

    @staticmethod
    def judge(evidence: Evidence) -> Decision:
        seq = evidence.settings["sequential"]
        noise = estimate_noise(evidence.rows, float(seq["prior_df"]), evidence.by_config, evidence.kind,
                               **kind_noise_settings(seq, evidence.kind), fitted_df=evidence.slope_df)
        return _sequential(seq, noise, evidence.adjusted, evidence.incumbent_runs, evidence.gains, evidence.figures,
                           evidence.default_seed, evidence.selected_from, evidence.failed_seeds)

    @staticmethod
    def keep_margin(rows: list[dict], settings: dict, best: float) -> float | None:
        """A first pair gaining this much settles the SPRT at once; a smaller promising gain earns more pairs."""
        seq = settings["sequential"]
        slope, slope_df = fit_speed(rows, settings)
        noise = estimate_noise(rows, float(seq["prior_df"]), adjusted_config_runs(rows, slope), fitted_df=slope_df)
        if noise.paired_sd is None:
            return None
        sigma = judged_sd(noise)
        upper = sprt([], sigma, float(seq["effect"]), float(seq["alpha"]), float(seq["beta"])).upper
        effect = float(seq["effect"])
        return max(sigma * (effect / 2 + upper / effect), float(seq["min_gain"]))  # LLR(one gain g) >= A, solved for g


class SingleRule:
    """decide.rule=single: the candidate's first run against the best minus a noise margin (judge_single_run)."""

    @staticmethod
    def judge(evidence: Evidence) -> Decision:
        if not evidence.candidate:  # its first run failed and none has succeeded yet: the retry is asked for as a pair
            return SequentialRule.judge(evidence)
        candidate, settings = evidence.candidate, evidence.settings
        baselines = [r.get("val_bpb") for r in evidence.rows if r.get("status") == "baseline"]
        first = candidate[min(candidate, key=lambda s: (s not in evidence.incumbent_runs, s))]
        single = judge_single_run(first, evidence.measured_incumbent, noise_sigma(baselines), settings["min_delta"],
                                  settings["sigma_k"])
        return Decision(single.status, single.reason, threshold=single.threshold, verdict="single run vs threshold",
                        **{**evidence.figures, "best_val_bpb": single.best_val_bpb, "val_bpb": first})

    @staticmethod
    def keep_margin(rows: list[dict], settings: dict, best: float) -> float | None:
        sigma = noise_sigma([r.get("val_bpb") for r in rows if r.get("status") == "baseline"])
        return best - keep_threshold(best, sigma, settings["min_delta"], settings["sigma_k"])


# decide.rule -> the rule: a class with judge(Evidence) -> Decision and keep_margin(rows, settings, best).
KEEP_RULES = Registry({
    "sequential": "research.judging.verdict:SequentialRule",
    "single": "research.judging.verdict:SingleRule",
})


def keep_rule(settings: dict):
    """The rule decide.rule names; an unknown name is one sentence."""
    name = settings.get("rule", "sequential")
    if name not in KEEP_RULES:
        raise ConfigurationError(f"decide.rule={name} is not a keep rule; choose one of "
                                 f"{', '.join(f'decide.rule={known}' for known in KEEP_RULES)}.")
    return KEEP_RULES.load(name)


def kind_noise_settings(seq: dict, kind: str | None) -> dict:
    """estimate_noise's per-kind arguments from decide.sequential."""
    return {"kind_prior_df": float(seq.get("kind_prior_df", 2.0)),
            "kind_unpaired": kind is not None and kind in (seq.get("unpaired_kinds") or ())}


def judged_sd(noise) -> float:
    """The paired sd the SPRT is given: the estimate, widened by sqrt(1 + 1 / df) for the uncertainty of an estimate
    from df degrees of freedom (the SPRT takes sigma as known). At the start of a run it rests on two baselines,
    one degree of freedom, and a low draw made early pairs look decisive. bench/decide_sim.py, 200 runs a cell:
    nulls kept 5.3% (h200-speed) and 9% of a 3x-noisier kind without it, 2.0% and 4.8% with it; sqrt(1 + 2 / df)
    cost too much power (2x gains kept 76% with 10% crashes). Five df widen by 10%, fifty by 1%."""
    return noise.paired_sd * math.sqrt(1.0 + 1.0 / max(noise.df, 1.0))


def min_pairs_to_keep(seq: dict, noise, kind: str | None = None) -> int:
    """A kind known (decide.sequential.unpaired_kinds) or seen to be noisier than the pooled figure needs
    `noisier_min_pairs` pairs before a keep: one lucky pair judged with a noise figure learned from few pairs is
    the likeliest false keep (bench/decide_sim.py: 30 of 44 false keeps of the noisier kind were on one pair)."""
    if kind is not None and kind in (seq.get("unpaired_kinds") or ()):
        return int(seq.get("noisier_min_pairs", 2))
    if noise.pooled_sd is None or noise.paired_sd is None:
        return 1
    noisier = noise.paired_sd > float(seq.get("noisier_ratio", 1.2)) * noise.pooled_sd
    return int(seq.get("noisier_min_pairs", 2)) if noisier else 1


def _sequential(seq: dict, noise, candidate, incumbent_runs, gains, figures, default_seed, selected_from,
                failed_seeds=()) -> Decision:
    if noise.paired_sd is None:
        reason = "no noise estimate yet (decide.baseline_repeats must be 2 or more)"
        return Decision("discard", reason + "; discarded.", error=reason, **figures)
    sigma = max(judged_sd(noise), 1e-12)  # runs that agree to the last bit: any gain at all is real
    figures["paired_se"] = sigma / math.sqrt(len(gains)) if gains else None
    # A round's winner is the best of several first pairs, a choice that favours luck: judge it on the others.
    evidence = [gain for _, gain in gains][1 if selected_from > 1 else 0:]
    test = sprt(evidence, sigma, float(seq["effect"]), float(seq["alpha"]), float(seq["beta"]))
    kind = f" ({figures['change_kind']} changes)" if figures.get("change_kind") else ""
    said = test.describe() + f", paired sd {sigma:.6f}{kind}"
    gain = statistics.fmean(evidence) if evidence else 0.0
    needed = min_pairs_to_keep(seq, noise, figures.get("change_kind"))
    if test.outcome == ACCEPT and gain >= float(seq["min_gain"]) and len(evidence) >= needed:
        reason = f"keep: paired gain {gain:.6f} over {len(evidence)} pair(s); {said}."
        return Decision("keep", reason, verdict=said, **{**figures, "best_val_bpb": figures["val_bpb"]})
    if test.outcome == ACCEPT and gain < float(seq["min_gain"]):
        reason = f"paired gain {gain:.6f} is real but below decide.sequential.min_gain; discarded."
        return Decision("discard", reason, verdict=said, **figures)
    if test.outcome == REJECT:
        reason = (f"paired gain {gain:+.6f} is nearer none than the {test.target:+.6f} the test looks for "
                  f"(decide.sequential.effect x paired sd): {said}; discarded.")
        return Decision("discard", reason, verdict=said, **figures)
    if len(evidence) >= int(seq["max_pairs"]):
        reason = f"still undecided after decide.sequential.max_pairs={seq['max_pairs']} pairs ({said}); discarded."
        return Decision("discard", reason, verdict=said + ", cap reached", **figures)
    if test.outcome == ACCEPT:
        said += f"; a noisier kind needs {needed} pairs to be kept"
    seed, incumbent_lacks = next_pair_seed(incumbent_runs, candidate, default_seed, failed_seeds)
    return Decision(CONTINUE, f"undecided, next pair on seed {seed}: {said}", verdict=said, next_seed=seed,
                    incumbent_runs_next=incumbent_lacks, pairs_left=int(seq["max_pairs"]) - len(evidence), **figures)


def keep_margin(rows: list[dict], settings: dict) -> float | None:
    """The val_bpb gain that keeps a change on its first run (what the proposer is told), by the run's keep rule."""
    base = incumbent(rows)
    if base.mean is None:
        return None
    return keep_rule(settings).keep_margin(rows, settings, base.mean)


def decision_fields(decision: Decision, trained: Trained) -> dict:
    """The ledger columns a decision fills (the rest of a row is the experiment's metadata)."""
    return {"adjusted_val_bpb": decision.adjusted_val_bpb, "speed_slope": decision.speed_slope,
            "change_kind": decision.change_kind, "seed_speeds": format_runs(trained.candidate_speeds),
            "incumbent_speeds": format_runs(trained.incumbent_speeds),
            "status": decision.status, "val_bpb": decision.val_bpb, "best_val_bpb": decision.best_val_bpb,
            "delta": decision.delta, "paired_exp": decision.paired_exp,
            "paired_seeds": " ".join(str(s) for s in decision.paired_seeds) or None,
            "paired_delta": decision.paired_delta, "paired_se": decision.paired_se, "verdict": decision.verdict,
            "seed_runs": format_runs(trained.candidate), "incumbent_runs": format_runs(trained.incumbent_new),
            "error": decision.error}


def paired_deltas(history: list, base_seed: Any) -> dict[int, float]:
    """Each experiment's gain against its incumbent on the same seed(s), by experiment number (negative = better).

    Rows decided by the paired rule carry it (`paired_delta`). Older rows trained on the base block's seed
    while the baselines spread over several seeds; for them the reference is the baseline row trained with
    `base_seed`, replaced by each keep. Experiments before any such reference are left out.
    """
    reference: float | None = None
    deltas: dict[int, float] = {}
    for row in sorted(history, key=lambda r: int(r.get("exp", 0))):
        value = finite_or_none(row.get("val_bpb"))
        if row.get("status") == "baseline":
            same_seed = base_seed is not None and str(row.get("seed")) == str(base_seed)
            if reference is None and same_seed and value is not None:
                reference = value
            continue
        recorded = finite_or_none(row.get("paired_delta"))
        if recorded is not None:
            deltas[int(row["exp"])] = recorded
        elif reference is not None and value is not None:
            deltas[int(row["exp"])] = value - reference
        if row.get("status") == "keep" and value is not None:
            reference = value
    return deltas


def _first_line(text: str | None, default: str) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0][:200] if lines else default


def check_stop(rows: list[dict], max_consecutive_crashes: int) -> str | None:
    """A reason sentence when the last max_consecutive_crashes experiments all crashed, else None.

    Skipped proposals are ignored: they never reached training, so they say nothing about whether training
    works. 0 or less disables the check.
    """
    if max_consecutive_crashes <= 0:
        return None
    ran = [row for row in rows if row.get("status") != "skip"]
    tail = ran[-max_consecutive_crashes:]
    if len(tail) < max_consecutive_crashes or any(row.get("status") != "crash" for row in tail):
        return None
    last_error = _first_line(tail[-1].get("error"), "no error recorded")
    return (f"The last {max_consecutive_crashes} experiments crashed (last error: {last_error}); "
            f"the run stopped so you can fix the cause, see the error column of results.tsv.")


def check_baseline(rows: list[dict]) -> None:
    """Raise ResearchStopped when the baseline crashed: nothing can be judged against a missing baseline.

    The baseline is the first row (experiment 0) and every row with status 'baseline'.
    """
    if not rows:
        return
    first = min(rows, key=lambda row: row["exp"])
    candidates = [first] + [row for row in rows if row.get("status") == "baseline" and row is not first]
    for row in candidates:
        val = row.get("val_bpb")
        crashed = row.get("status") == "crash" or (
            row.get("status") == "baseline" and (val is None or not math.isfinite(val)))
        if crashed:
            reason = _first_line(row.get("error"), "no val_bpb")
            raise ResearchStopped(f"The baseline crashed ({reason}); fix the configuration before running experiments.")
