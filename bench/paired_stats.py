"""Paired comparisons of proposers across base seeds: the Wilcoxon signed-rank test and the table the proposer
benchmarks print (bench/surrogate_replay.py, bench/proposer_cpu.py, bench/remeasure.py). numpy only: scipy is not
a dependency of the project."""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np


def wilcoxon(differences: list[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test: zeros dropped, tied sizes share their mean rank; exact
    (every sign assignment counted) up to 20 pairs, the normal approximation above."""
    d = [x for x in differences if x != 0]
    n = len(d)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    doubled = [0] * n  # twice the ranks: mean ranks of ties are halves, twice them are integers
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            doubled[order[k]] = i + j + 2
        i = j + 1
    plus, total = sum(r for r, x in zip(doubled, d) if x > 0), sum(doubled)
    if n <= 20:
        counts = np.zeros(total + 1)
        counts[0] = 1
        for r in doubled:  # the null distribution of the positive ranks' sum: each sign a fair coin
            counts[r:] = counts[r:] + counts[:-r].copy()
        low = counts[:min(plus, total - plus) + 1].sum() / counts.sum()
        return float(min(1.0, 2 * low))
    mean, sd = total / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    z = (abs(plus / 2 - mean) - 0.5) / sd
    return float(min(1.0, math.erfc(z / math.sqrt(2))))


def pairwise_lines(gains: dict[str, list[float]]) -> list[str]:
    """A Markdown table: for each pair of proposers, the mean per-seed difference of their gains (the lists are
    aligned by base seed), wins / ties / losses of the first, and the Wilcoxon p-value."""
    lines = ["| pair | mean difference | wins / ties / losses | Wilcoxon p |", "|---|---:|---|---:|"]
    for a, b in combinations(gains, 2):
        diff = [x - y for x, y in zip(gains[a], gains[b])]
        wins, ties = sum(d > 0 for d in diff), sum(d == 0 for d in diff)
        lines.append(f"| {a} - {b} | {np.mean(diff):+.4f} | {wins} / {ties} / {len(diff) - wins - ties} | "
                     f"{wilcoxon(diff):.3g} |")
    return lines
