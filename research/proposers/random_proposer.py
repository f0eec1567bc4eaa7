"""The control: one uniformly random valid change (a uniform key, then a uniform value on the key's scale)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from research.errors import InvalidProposal
from research.proposers.base import Proposal, ProposalContext, Proposer, exhausted
from research.space import Param, format_value, get_value, validate

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
        space = context.space_obj()
        rng = np.random.default_rng([int(context.seed) & 0xFFFFFFFF, len(context.history or []),
                                     len(context.in_flight or []), 7])
        excluded = context.excluded()
        keys = space.keys
        reasons: list[str] = []
        for _ in range(self.max_draws):
            key = keys[int(rng.integers(len(keys)))]
            param = space[key]
            try:
                current = get_value(context.hparams, key)
            except KeyError:
                continue
            value = self._draw(param, rng)
            text = format_value(param, value)
            proposal = {"key": key, "value": value, "description": f"{key} {format_value(param, current)} -> {text}",
                        "reasoning": "uniformly random control"}
            try:
                change = validate(proposal, context.hparams, space, excluded, context.seq_len,
                                  base_sha=context.base_sha)
            except InvalidProposal as err:
                if len(reasons) < 5:
                    reasons.append(str(err))
                continue
            return Proposal(change=change, attempts=1, model="random", proposer=self.name)
        raise exhausted(reasons + ["The random proposer drew no valid change; check conf/space.yaml."],
                        attempts=1, model="random", proposer=self.name)
