"""`proposer=tpe`: Optuna's Tree-structured Parzen Estimator under the ONE-change rule, offline and deterministic.

How one change is asked of TPE: the study's search space is conditional, as Optuna's define-by-run allows. Each
trial first picks `key` (a categorical over conf/space.yaml's keys), then only that key's value (`v:<key>`, on
the key's own scale: log for log keys). Every ledger row that changed one key is a finished trial with exactly
those two parameters, so TPE's independent (univariate) densities are what the one-change rule needs: the
density ratio l(x)/g(x) of `key` picks the key whose changes tended to be the good ones, then the ratio of
`v:<key>`, fitted on that key's own trials only, picks its value. The alternative of asking TPE for a whole
block with every key but one fixed to the incumbent's would still have to choose the free key by hand.

A trial's value is the change's paired gain against its incumbent (research.judging.verdict.paired_deltas; negative is
better), which is what the keep rule judges. A crash is a failure TPE must learn from, so it is recorded as a
finished trial with the worst gain seen (Optuna's FAIL state would be ignored by TPE, and it would ask again).
Changes in flight in a parallel round are RUNNING trials: with `constant_liar` TPE treats them as bad, so a
round does not ask the same thing twice. The default block is the zero every gain is measured from.

Deterministic: TPE's generator is seeded from (seed, history length, in-flight count), the study lives in
memory and is rebuilt from the ledger each time, so a resumed run proposes what the killed one would have.
"""
from __future__ import annotations

import math
import warnings
from itertools import product
from typing import Any, Iterator, Mapping

from research.judging.verdict import finite_or_none, paired_deltas
from research.proposing.proposers.base import Proposal, ProposalContext, Proposer, first_valid_change, in_flight_pair
from research.proposing.space import Param, Space, canonical_text, format_value, get_value

_MISSING = object()
DEFAULTS = {"startup_trials": 8, "candidates": 24, "max_asks": 64, "pattern_max_len": 4}


def pattern_choices(max_len: int) -> list[str]:
    """Every S/L window pattern up to `max_len` characters: TPE needs a fixed set of categories."""
    return ["".join(chars) for length in range(1, max_len + 1) for chars in product("SL", repeat=length)]


class TPEProposer(Proposer):
    name = "tpe"

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        merged = {**DEFAULTS, **{k: v for k, v in dict(cfg or {}).items() if v is not None and k != "name"}}
        self.startup_trials = int(merged["startup_trials"])  # random asks before TPE's model takes over
        self.candidates = int(merged["candidates"])  # TPE's draws from l(x) per ask, scored by l/g
        self.max_asks = int(merged["max_asks"])  # asks before giving up on a valid change
        self.pattern_max_len = int(merged["pattern_max_len"])

    def __repr__(self) -> str:
        return f"TPEProposer(startup_trials={self.startup_trials}, candidates={self.candidates})"

    def _distribution(self, param: Param, current: Any):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if param.type == "int":
            return IntDistribution(int(param.min), int(param.max), log=param.log)
        if param.type == "float":
            return FloatDistribution(float(param.min), float(param.max), log=param.log)
        if param.type == "bool":
            return CategoricalDistribution([False, True])
        if param.type == "choice":
            return CategoricalDistribution(list(param.choices))
        choices = pattern_choices(self.pattern_max_len)
        return CategoricalDistribution(choices if current in choices else [*choices, current])

    @staticmethod
    def _parse(param: Param, value: Any) -> Any:
        """A ledger row's value as the distribution holds it, or None when it cannot be read."""
        try:
            text = canonical_text(param, value)
        except (TypeError, ValueError):
            return None
        if param.type == "int":
            return int(float(text))
        if param.type == "float":
            return float(text)
        if param.type == "bool":
            return text == "true"
        if param.type == "choice":
            return next((c for c in param.choices if format_value(param, c) == text), None)
        return text

    def _study(self, context: ProposalContext, space: Space):
        import optuna
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = [int(context.seed) & 0xFFFFFFFF, len(context.history or []), len(context.in_flight or [])]
        with warnings.catch_warnings():  # constant_liar is marked experimental in Optuna
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(
                seed=int(sum(part * 1_000_003 ** i for i, part in enumerate(seed)) % 2**32),
                n_startup_trials=self.startup_trials, n_ei_candidates=self.candidates, constant_liar=True)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        keys = [key for key in space.keys if _has(context.hparams, key)]
        key_distribution = CategoricalDistribution(keys)
        distributions = {key: self._distribution(space[key], _current(context.hparams, key)) for key in keys}

        def params_of(key: str, value: Any):
            parsed = self._parse(space[key], value)
            if parsed is None or not _holds(distributions[key], parsed):
                return None
            return {"key": key, f"v:{key}": parsed}, {"key": key_distribution, f"v:{key}": distributions[key]}

        gains = paired_deltas(context.history or [], (context.hparams or {}).get("seed"))
        finished = []
        for row in context.history or []:
            key, status = row.get("key"), row.get("status")
            if key not in distributions or status not in ("keep", "discard", "crash"):
                continue
            gain = None if status == "crash" else gains.get(int(row.get("exp", -1)), finite_or_none(row.get("delta")))
            if status != "crash" and gain is None:
                continue  # no reference to measure it against: nothing to learn
            finished.append((key, row.get("value"), gain))
        seen = [gain for _, _, gain in finished if gain is not None]
        worst = max(seen) if seen else 0.0
        crash_value = worst + (abs(worst) or 1e-3)  # worse than anything that trained
        for key, value, gain in finished:
            spec = params_of(key, value)
            if spec is not None:
                study.add_trial(create_trial(params=spec[0], distributions=spec[1], user_attrs={"crash": gain is None},
                                             value=crash_value if gain is None else float(gain)))
        for item in context.in_flight or []:
            key, value = in_flight_pair(item)
            spec = params_of(key, value) if key in distributions else None
            if spec is not None:
                study.add_trial(create_trial(params=spec[0], distributions=spec[1], state=TrialState.RUNNING))
        return study, keys, distributions

    def _asks(self, context: ProposalContext, space: Space, built: tuple) -> Iterator[tuple[str, Any, str]]:
        from optuna.trial import TrialState

        study, keys, distributions = built
        learned = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        for _ in range(self.max_asks):
            trial = study.ask()
            key = trial.suggest_categorical("key", keys)
            param = space[key]
            value = _suggest(trial, f"v:{key}", distributions[key], param)
            # An invalid ask (a duplicate, a broken constraint) is told as failed, so the next ask moves on.
            study.tell(trial, state=TrialState.FAIL)
            source = "TPE's density ratio" if learned >= self.startup_trials else "TPE's start-up (random) draw"
            yield key, value, f"{source} over {learned} past changes"

    def propose(self, context: ProposalContext) -> Proposal:
        return self.advise(context, limit=0)[0]

    def advise(self, context: ProposalContext, limit: int = 5) -> tuple[Proposal, list[tuple[str, Any, float]]]:
        """TPE's proposal and `good_changes` from one study built from the ledger (the hybrid shows Claude both)."""
        space = context.space_obj()
        built = self._study(context, space)
        proposal = first_valid_change(
            self._asks(context, space, built), context, self.name,
            f"TPE asked {self.max_asks} times and found no valid change; check conf/space.yaml.")
        return proposal, _good_trials(built[0], limit)  # the asks' failed trials are not among the complete ones

    def good_changes(self, context: ProposalContext, limit: int = 5) -> list[tuple[str, Any, float]]:
        """The past changes TPE's good density l(x) is fitted on (Optuna's default split: the best 10%, at least
        one), best first, as (key, value, paired gain); crashes are never among them."""
        return _good_trials(self._study(context, context.space_obj())[0], limit)


def _good_trials(study, limit: int) -> list[tuple[str, Any, float]]:
    from optuna.trial import TrialState

    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    done = [t for t in done if not t.user_attrs.get("crash")]
    good = done[:max(1, math.ceil(0.1 * len(done)))] if done else []
    return [(t.params["key"], t.params[f"v:{t.params['key']}"], float(t.value)) for t in good[:limit]]


def _suggest(trial, name: str, distribution, param: Param) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    value = trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    return float(format_value(param, value)) if math.isfinite(value) else value


def _current(hparams: Mapping[str, Any], key: str) -> Any:
    try:
        return get_value(hparams, key)
    except KeyError:
        return _MISSING


def _has(hparams: Mapping[str, Any], key: str) -> bool:
    return _current(hparams, key) is not _MISSING


def _holds(distribution, value: Any) -> bool:
    """Whether `value` lies in the distribution (a past row from a wider space, or a longer pattern, does not)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return any(type(choice) is type(value) and choice == value for choice in distribution.choices)
    return distribution.low <= value <= distribution.high
