"""The offline proposer: a bandit over keys with an adaptive step per key. No network, no LLM, not random.

Key choice: UCB over keys. A key's estimate starts at its prior (`priors`, in noise sigmas: the keys that
usually matter for a short training, such as the schedule, the learning rates and the batch size, are tried
first) and is then replayed from its rows (below), plus an exploration bonus c * sqrt(ln(T + 1) / (n + 1)).
Keys that paid off are exploited, keys that failed sink below the untried ones. Keys already in flight in the
same parallel round come last.

Paired deltas (research.judging.verdict.paired_deltas): each change is judged against its base's run on the same seed,
not against the baselines' mean, which hides how lucky the base seed was. Rows without a seed fall back to
`delta`.

Step per key, replayed from the key's history rows (value and the value it replaced, `previous`): a keep, or a
discard that beat its paired reference or lost by less than `inconclusive` sigmas, sets that direction and
grows the step (`grow`); a clearly worse discard (or a crash) flips the direction and blocks the failed one;
discards on both sides shrink the step. Steps are multiplicative for
log-scaled floats (log space), powers of two for log-scaled ints (batch sizes), +/- for linear ints and floats,
the neighbouring choice for ordered choices, the next untried choice otherwise, a flip for bools, one-character
edits for patterns. After `stagnation_after` non-keeps in a row the steps widen (x2 per streak) and the
exploration bonus doubles.

Every candidate goes through research.proposing.validation.validate (bounds, constraints, duplicates, in-flight); the first
valid one wins. Deterministic: the generator is seeded from (seed, len(history), len(in_flight)), no global RNG,
no clock, so the same context gives the same proposal (a resumed run proposes what the crashed one would).
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np

from research.judging.verdict import finite_or_none, paired_deltas
from research.errors import ProposerFatal
from research.proposing.proposers.base import Proposal, ProposalContext, Proposer, first_valid_change, in_flight_pair
from research.proposing.space import Param, canonical_text, format_value, get_value

DEFAULTS = {"exploration": 2.0, "grow": 1.5, "shrink": 0.5, "stagnation_after": 16, "crash_reward": -2.0,
            "initial_step": 0.08, "priors": {}, "paired": True, "inconclusive": 1.0}


class KeyState(NamedTuple):
    """What a key's history says about its next step."""

    direction: int            # +1 up, -1 down, 0 either way
    step: float               # on the key's search scale (log for log keys, index for choices)
    estimate: float           # expected gain of the next step, in noise sigmas (the bandit's value)
    blocked: frozenset        # directions that came out worse from the current base

    def directions(self, rng: np.random.Generator) -> list[int]:
        """The directions to try, preferred first (a coin flip when there is none), blocked ones left out."""
        order = [self.direction, -self.direction] if self.direction else [int(d) for d in rng.permutation([1, -1])]
        return [d for d in order if d not in self.blocked]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


class LocalProposer(Proposer):
    name = "local"

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        merged = {**DEFAULTS, **{k: v for k, v in dict(cfg or {}).items() if v is not None}}
        self.exploration = float(merged["exploration"])
        self.grow = float(merged["grow"])
        self.shrink = float(merged["shrink"])
        self.stagnation_after = int(merged["stagnation_after"])
        self.crash_reward = float(merged["crash_reward"])
        self.initial_step = float(merged["initial_step"])  # fraction of the key's range (log range if log)
        self.priors = {str(k): float(v) for k, v in dict(merged["priors"] or {}).items()}
        self.inconclusive = float(merged["inconclusive"])  # in sigmas; 0: any worse discard turns back
        self.paired = bool(merged["paired"])  # False: judge changes by `delta` alone (the ablation in the bench)
        # Fallback for rows without `previous`: what our own earlier proposals replaced, by (key, canonical).
        self._previous: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"LocalProposer(exploration={self.exploration}, stagnation_after={self.stagnation_after})"

    # ------------------------------------------------------------------------------------------- units
    @staticmethod
    def _numeric(param: Param, value: Any) -> float | None:
        """The key's value on its search scale (log for log keys, the index for choices), or None."""
        try:
            text = canonical_text(param, value)
        except (TypeError, ValueError):
            return None
        if param.type in ("int", "float"):
            number = float(text)
            if param.log:
                return math.log(number) if number > 0 else None
            return number
        if param.type == "choice":
            names = [format_value(param, c) for c in param.choices]
            return float(names.index(text)) if text in names else None
        if param.type == "bool":
            return 1.0 if text == "true" else 0.0
        return None

    def _base_step(self, param: Param) -> float:
        if param.type in ("int", "float"):
            lo, hi = (math.log(param.min), math.log(param.max)) if param.log else (param.min, param.max)
            step = (hi - lo) * self.initial_step
            if param.type == "int" and not param.log:
                step = max(1.0, step)
            if param.type == "int" and param.log:
                step = max(step, math.log(2.0))
            return step
        return 1.0

    # ------------------------------------------------------------------------------------------- history
    def _scale(self, context: ProposalContext, rows: list) -> float:
        if context.noise_sigma and context.noise_sigma > 0:
            return float(context.noise_sigma)
        deltas = [abs(float(r["delta"])) for r in rows if r.get("delta") not in (None, "")
                  and r.get("status") in ("keep", "discard")]
        return float(np.median(deltas)) if deltas else 1e-3

    def _key_state(self, param: Param, rows: list, scale: float, paired: Mapping[int, float]) -> KeyState:
        """Replay the key's rows into its KeyState. The estimate starts at the key's prior; each row's delta is
        its paired delta when there is one.

        keep: go on in that direction with a larger step; the estimate is the gain just made. discard that was
        slightly better (not enough to keep): same direction, larger step. discard that was worse by D: the other
        side is estimated at D / 2 (a locally linear objective mirrors the loss), unless it already failed too:
        then the step halves and the estimate turns negative. A crash flips the direction with a smaller step.
        A direction that came out worse (or crashed) is blocked until a keep or until both sides have failed: when
        the mirrored side is out of bounds or invalid, the key has nothing to offer instead of going further the
        wrong way (4096 -> 8192 tokens was worse, and 16384, 65536, 1048576 followed).
        """
        direction, step, estimate = 0, self._base_step(param), self.priors.get(param.key, 0.0)
        failed: set[int] = set()
        for row in rows:
            status = row.get("status")
            if status not in ("keep", "discard", "crash"):
                continue
            raw = paired.get(int(row.get("exp", -1)), finite_or_none(row.get("delta")))
            delta = raw / scale if raw is not None else 0.0
            previous = row.get("previous")
            if previous is None:
                try:
                    previous = self._previous.get((param.key, canonical_text(param, row.get("value"))))
                except (TypeError, ValueError):
                    previous = None
            new, old = self._numeric(param, row.get("value")), self._numeric(param, previous)
            if new is None or old is None or new == old:
                moved, size = 0, step
            else:
                moved, size = _sign(new - old), abs(new - old)
            if status == "keep":
                direction, step, estimate = moved, size * self.grow, min(-delta, 3.0)
                failed.clear()
            elif status == "discard" and delta < self.inconclusive:
                # Better, or worse by less than the noise: the step said little, so go further the same way.
                direction, step, estimate = moved, size * self.grow, min(max(-delta, 0.0), 3.0)
            else:
                if moved:
                    failed.add(moved)
                if status == "crash":
                    direction, step, estimate = -moved, size * self.shrink, self.crash_reward
                elif failed == {1, -1} or not moved:
                    direction, step, estimate = 0, size * self.shrink, -1.0
                    failed.clear()
                else:
                    direction, step, estimate = -moved, size, 0.5 * min(delta, 6.0)
        return KeyState(direction, step, estimate, frozenset(failed))

    # ------------------------------------------------------------------------------------------- candidates
    def _candidates(self, param: Param, current: Any, state: KeyState, step: float,
                    rng: np.random.Generator) -> Iterator[Any]:
        if param.type == "bool":
            yield not bool(current)
            return
        if param.type == "choice":
            names = [format_value(param, c) for c in param.choices]
            here = names.index(format_value(param, current)) if format_value(param, current) in names else 0
            ordered = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in param.choices)
            if ordered:
                dirs = state.directions(rng)
                for dist in range(1, len(names)):
                    for d in dirs:
                        if 0 <= here + d * dist < len(names):
                            yield param.choices[here + d * dist]
            else:
                for dist in range(1, len(names)):
                    yield param.choices[(here + dist) % len(names)]
            return
        if param.type == "str-pattern":
            yield from self._pattern_candidates(str(current), rng)
            return
        # int / float
        origin = self._numeric(param, current)
        if origin is None:
            return
        dirs = state.directions(rng)
        lo, hi = (math.log(param.min), math.log(param.max)) if param.log else (param.min, param.max)
        for factor in (1.0, 0.5, 2.0, 0.25, 4.0):
            for d in dirs:
                target = min(max(origin + d * step * factor, lo), hi)  # widened steps can outgrow exp()
                value: Any = math.exp(target) if param.log else target
                if param.type == "int" and param.log:
                    # The space's log-scaled ints are batch sizes: a power of two keeps total_batch_tokens a
                    # multiple of device_batch_size * seq_len, where plain rounding (8414 for 4096 x 2.05) does not.
                    value = 2 ** int(round(math.log2(max(value, 1.0))))
                    if value == current:
                        value = current * 2 if d > 0 else current // 2
                elif param.type == "int":
                    value = int(round(value))
                    if value == current:
                        value = current + d
                else:
                    value = float(format_value(param, value))
                value = min(max(value, param.min), param.max)
                yield value

    @staticmethod
    def _pattern_candidates(current: str, rng: np.random.Generator) -> Iterator[str]:
        edits = []
        for i in range(len(current)):
            edits.append(current[:i] + ("L" if current[i] == "S" else "S") + current[i + 1:])
        edits.append(current + "S")
        edits.append(current + "L")
        if len(current) > 1:
            edits.append(current[:-1])
        for index in rng.permutation(len(edits)):
            yield edits[int(index)]

    # ------------------------------------------------------------------------------------------- propose
    def propose(self, context: ProposalContext) -> Proposal:
        space = context.space_obj()
        self._check_priors(context.hparams)
        rows = [r for r in (context.history or []) if r.get("status") != "baseline"]
        rng = np.random.default_rng([int(context.seed) & 0xFFFFFFFF, len(context.history or []),
                                     len(context.in_flight or [])])
        in_flight_keys = {in_flight_pair(item)[0] for item in context.in_flight or []}

        streak = 0
        for row in reversed(rows):
            if row.get("status") == "keep":
                break
            if row.get("status") in ("discard", "crash"):
                streak += 1
        widen = 2.0 ** (streak // self.stagnation_after) if self.stagnation_after > 0 else 1.0

        scale = self._scale(context, rows)
        paired = paired_deltas(context.history or [], (context.hparams or {}).get("seed")) if self.paired else {}
        states, counts = {}, {}
        for key in space.keys:
            key_rows = [r for r in rows if r.get("key") == key]
            states[key] = self._key_state(space[key], key_rows, scale, paired)
            counts[key] = sum(1 for r in key_rows if r.get("status") in ("keep", "discard", "crash"))
        total = sum(counts.values())
        jitter = rng.random(len(space.keys))
        scores = []
        for i, key in enumerate(space.keys):
            bonus = self.exploration * widen * math.sqrt(math.log(total + 1.0) / (counts[key] + 1))
            score = states[key].estimate + bonus + 1e-6 * jitter[i] - (100.0 if key in in_flight_keys else 0.0)
            scores.append((score, key))
        scores.sort(key=lambda item: -item[0])

        def candidates():
            for _, key in scores:
                try:
                    current = get_value(context.hparams, key)
                except KeyError:
                    continue
                state = states[key]
                step = state.step * widen
                seen: set[str] = set()
                for value in self._candidates(space[key], current, state, step, rng):
                    text = format_value(space[key], value)
                    if text not in seen:
                        seen.add(text)
                        yield key, value, self._reasoning(key, state.direction, step, widen)

        proposal = first_valid_change(candidates(), context, self.name,
                                      "The local proposer found no untried valid change; widen conf/space.yaml.")
        change = proposal.change
        self._previous[(change.key, change.canonical)] = change.previous
        return proposal

    def _check_priors(self, hparams: Mapping[str, Any]) -> None:
        """A prior must name a key of the hyperparameter block (a typo would silently do nothing). Keys left out
        of a trimmed search space are fine: they are simply never proposed."""
        unknown = []
        for key in sorted(self.priors):
            try:
                get_value(hparams, key)
            except KeyError:
                unknown.append(key)
        if unknown:
            raise ProposerFatal(f"The local proposer's priors name keys that are not in the hyperparameter block: "
                                f"{', '.join(unknown)}; fix conf/proposer/local.yaml.")

    @staticmethod
    def _reasoning(key: str, direction: int, step: float, widen: float) -> str:
        where = {1: "up", -1: "down", 0: "either way"}[direction]
        note = f", widened x{widen:g} after a stagnant streak" if widen > 1 else ""
        return f"bandit pick; step {step:.3g} on the search scale, going {where}{note}"
