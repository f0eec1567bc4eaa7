"""Wald's sequential probability ratio test (SPRT, Wald 1945) for the mean of paired gains.

Each pair gives a gain g = incumbent - candidate on one seed (positive = better), taken as normal with a known
spread sigma (research.judging.pairing.estimate_noise). Two hypotheses:
    H0: the change does nothing (mean 0)        H1: it gains `effect` x sigma
After n pairs the log likelihood ratio of H1 to H0 is
    LLR = (d1 / sigma^2) * (sum(g) - n * d1 / 2),   d1 = effect * sigma
and Wald's boundaries are A = ln((1 - beta) / alpha) and B = ln(beta / (1 - alpha)): LLR >= A accepts H1
(keep), LLR <= B accepts H0 (discard), anything between asks for one more pair. With these boundaries the test
keeps a null change with probability <= ~alpha and misses an H1-sized one with probability <= ~beta, and it needs
fewer pairs on average than any fixed-size test with the same error rates (Wald & Wolfowitz 1948): a clearly
worse change crosses B on its first pair. A cap on the pairs truncates it; at the cap the change is discarded,
so truncation can only lower the false-keep rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ACCEPT, REJECT, CONTINUE = "accept", "reject", "continue"


@dataclass(frozen=True)
class SprtResult:
    outcome: str       # accept (H1: keep) | reject (H0: discard) | continue (one more pair)
    llr: float
    upper: float       # A
    lower: float       # B
    pairs: int
    target: float = 0.0  # H1's gain, effect x sigma: a smaller positive gain can still favour H0

    def describe(self) -> str:
        # Named by the hypotheses' gains: "accepts no gain" read as a contradiction next to a positive mean gain.
        word = {ACCEPT: f"favours a gain of {self.target:+.6f} over none", REJECT: f"favours no gain over {self.target:+.6f}",
                CONTINUE: f"cannot yet tell no gain from {self.target:+.6f}"}[self.outcome]
        return f"SPRT {word}: LLR {self.llr:+.2f} after {self.pairs} pair(s), bounds [{self.lower:+.2f}, {self.upper:+.2f}]"


def boundaries(alpha: float, beta: float) -> tuple[float, float]:
    if not (0 < alpha < 1 and 0 < beta < 1 and alpha + beta < 1):
        raise ValueError(f"SPRT needs 0 < alpha, beta and alpha + beta < 1 (got alpha {alpha}, beta {beta}); "
                         "fix decide.sequential in conf/config.yaml.")
    return math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))


def sprt(gains: list[float], sigma: float, effect: float, alpha: float, beta: float) -> SprtResult:
    """The test's verdict on the gains so far (in val_bpb; sigma > 0 and effect > 0)."""
    upper, lower = boundaries(alpha, beta)
    d1 = effect * sigma
    if not gains:
        return SprtResult(CONTINUE, 0.0, upper, lower, 0, d1)
    llr = d1 / sigma ** 2 * (sum(gains) - len(gains) * d1 / 2)
    outcome = ACCEPT if llr >= upper else REJECT if llr <= lower else CONTINUE
    return SprtResult(outcome, llr, upper, lower, len(gains), d1)
