"""What `autoresearch finalize` measures and what it concludes, as pure functions (no files, no Prefect).

After a run, its keeps are re-measured on K fresh seeds that no decision saw, every arm on the same seeds so
that each comparison is paired:
- `baseline`: the default block; `final`: the block the run hands over (the last keep's);
- `without-exp<N>` (leave-one-out ablation): the final block with kept change N set back to the value it had
  before N. A change whose key a later keep set again is superseded: leaving it out is not defined, and it is
  reported as such. An ablation whose block equals another arm's (one keep: final without it is the baseline)
  shares that arm's trainings.
The verified gain is baseline - final per seed, its mean +- standard error; a kept change's cost is
(final without it) - final per seed. A cost within `z` standard errors of zero is marked "no measurable cost".
Where the dataset has a held-out test split, baseline and final are scored on it too: a val gain beyond noise
that the test split does not show beyond noise is flagged as overfitting to the validation split.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from research.proposing.space import Change, apply_change, get_value


@dataclass(frozen=True)
class Arm:
    name: str               # baseline | final | without-exp<N>
    hparams: dict
    same_as: str | None = None  # trained under another arm's name: the same block
    change: str | None = None   # without-exp<N>: the kept change it leaves out


def plan_arms(baseline: dict, keeps: list[tuple[dict, dict]], ablation: bool) -> tuple[list[Arm], list[str]]:
    """(arms, notes). `keeps`: (ledger row, committed block) of every keep, in order."""
    final = keeps[-1][1] if keeps else baseline
    arms = [Arm("baseline", baseline), Arm("final", final, "baseline" if final == baseline else None)]
    notes: list[str] = []
    if not ablation:
        return arms, notes
    for index, (row, _) in enumerate(keeps):
        key, name = row.get("key"), f"without-exp{row['exp']}"
        later = [r for r, _ in keeps[index + 1:] if r.get("key") == key]
        if not key or later:
            notes.append(f"exp {row['exp']} ({row.get('change')}): superseded by exp {later[0]['exp']}, which set "
                         f"{key} again; not ablated." if later else f"exp {row['exp']}: no key recorded; not ablated.")
            continue
        before = keeps[index - 1][1] if index else baseline
        block = apply_change(final, Change(key, get_value(before, key), "", "", "", None))
        twin = next((arm.name for arm in arms if arm.hparams == block and arm.same_as is None), None)
        arms.append(Arm(name, block, twin, row.get("change")))
    return arms, notes


def trainings_needed(arms: list[Arm], seeds: int) -> int:
    return sum(arm.same_as is None for arm in arms) * seeds


def fresh_seeds(first: int, count: int) -> list[int]:
    return [int(first) + i for i in range(int(count))]


@dataclass(frozen=True)
class Paired:
    mean: float | None
    se: float | None
    pairs: int


def paired(values: dict[str, dict[int, float]], minuend: str, subtrahend: str) -> Paired:
    """Mean and standard error over seeds of values[minuend] - values[subtrahend] (seeds both have)."""
    a, b = values.get(minuend, {}), values.get(subtrahend, {})
    diffs = [a[s] - b[s] for s in sorted(a) if s in b]
    if not diffs:
        return Paired(None, None, 0)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) >= 2 else None
    return Paired(statistics.fmean(diffs), se, len(diffs))


def arm_values(arms: list[Arm], records: list[dict], column: str = "val_bpb") -> dict[str, dict[int, float]]:
    """Each arm's scores by seed from finalize.tsv's records (an alias reads its twin's)."""
    trained: dict[str, dict[int, float]] = {}
    for record in records:
        value = record.get(column)
        if value is not None and math.isfinite(value):
            trained.setdefault(record["arm"], {})[int(record["seed"])] = float(value)
    return {arm.name: trained.get(arm.same_as or arm.name, {}) for arm in arms}


def _pm(result: Paired) -> str:
    if result.mean is None:
        return "n/a"
    return f"{result.mean:+.6f}" + (f" +- {result.se:.6f}" if result.se is not None else "") + f" ({result.pairs} seeds)"


def summarize(arms: list[Arm], records: list[dict], keep_rows: list[dict], z: float) -> dict:
    """The verified gain, and per kept change: its gain at keep time and what removing it costs now."""
    values = arm_values(arms, records)
    gain = paired(values, "baseline", "final")
    changes = []
    for arm in arms[2:]:
        cost = paired(values, arm.name, "final")
        exp = int(arm.name.removeprefix("without-exp"))
        row = next((r for r in keep_rows if int(r["exp"]) == exp), {})
        matters = _beyond(cost, z)
        changes.append({"exp": exp, "change": arm.change, "gain_at_keep": -(row.get("paired_delta") or 0.0)
                        if row.get("paired_delta") is not None else None, "cost": cost,
                        "verdict": "matters" if matters else "no measurable cost"})
    test_gain = paired(arm_values(arms, records, "test_bpb"), "baseline", "final")
    real = _beyond(gain, z)
    return {"gain": gain, "changes": changes, "real": real, "test_gain": test_gain,
            # A val gain the held-out split does not show beyond noise: the keeps fit the validation split.
            "overfit": real and test_gain.pairs > 0 and not _beyond(test_gain, z)}


def _beyond(result: Paired, z: float) -> bool:
    return result.mean is not None and result.se is not None and result.mean > z * result.se


def verified_markdown(summary: dict, notes: list[str], seeds: list[int], z: float) -> str:
    """The "Verified" section of report.md and of the Prefect artifact."""
    gain = summary["gain"]
    word = "real" if summary["real"] else f"not shown beyond {z:g} standard errors"
    lines = ["## Verified", "",
             f"Re-measured on fresh seeds {', '.join(map(str, seeds))} (`autoresearch finalize`), every arm on the same seeds.",
             "", f"- Verified gain (baseline - final, val_bpb): {_pm(gain)}: {word}."]
    if summary["test_gain"].pairs:
        lines.append(f"- On the held-out test split, which no decision read: {_pm(summary['test_gain'])}.")
    if summary["overfit"]:
        lines.append(f"- **Overfitting to the validation split**: the val gain is real but the test split does not "
                     f"show it beyond {z:g} standard errors; treat the keeps as tuned to the validation text.")
    if summary["changes"]:
        lines += ["", "| kept exp | change | paired gain at keep time | cost of removing it now | verdict |",
                  "|---:|---|---:|---:|---|"]
        for item in summary["changes"]:
            at_keep = "n/a" if item["gain_at_keep"] is None else f"{item['gain_at_keep']:+.6f}"
            lines.append(f"| {item['exp']} | `{item['change']}` | {at_keep} | {_pm(item['cost'])} | {item['verdict']} |")
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
