"""The control: one uniformly random valid change (a uniform key, then a uniform value on the key's scale)."""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import numpy as np

from research.proposing.proposers.base import Proposal, ProposalContext, Proposer, first_valid_change
from research.proposing.space import Param, format_value, get_value

MAX_DRAWS = 2000


class RandomProposer(Proposer):
    name = "random"

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        self.max_draws = int(dict(cfg or {}).get("max_draws") or MAX_DRAWS)

    def __repr__(self) -> str:
        return "RandomProposer()"

    @staticmethod
    def _draw(param: Param, rng: np.random.Generator) -> Any:
        if param.type == "bool":
            return bool(rng.integers(2))
        if param.type == "choice":
            return param.choices[int(rng.integers(len(param.choices)))]
        if param.type == "str-pattern":
            # The only pattern in the space is [SL]{1,8}; other patterns get the same alphabet and are validated.
            length = int(rng.integers(1, 9))
            return "".join("SL"[int(i)] for i in rng.integers(2, size=length))
        if param.log:
            value = math.exp(rng.uniform(math.log(param.min), math.log(param.max)))
        else:
            value = rng.uniform(param.min, param.max)
        if param.type == "int":
            return int(min(max(round(value), param.min), param.max))
        return float(format_value(param, value))

    def propose(self, context: ProposalContext) -> Proposal:
        return first_valid_change(self._draws(context), context, self.name,
                                  "The random proposer drew no valid change; check conf/space.yaml.")

    def _draws(self, context: ProposalContext) -> Iterator[tuple[str, Any, str]]:
        space = context.space_obj()
        rng = np.random.default_rng([int(context.seed) & 0xFFFFFFFF, len(context.history or []),
                                     len(context.in_flight or []), 7])
        keys = space.keys
        for _ in range(self.max_draws):
            key = keys[int(rng.integers(len(keys)))]
            try:
                get_value(context.hparams, key)
            except KeyError:
                continue  # before drawing a value, so the draws of a full block stay the sequence they always were
            yield key, self._draw(space[key], rng), "uniformly random control"
