"""What a run cost, from its ledger rows: trainings, training and device hours, energy, LLM tokens and dollars,
and those per 0.01 val_bpb gained (the kept gain, or the verified one once `autoresearch finalize` ran).

A row records the figures of its first training. A paired decision trains more (the candidate on further
seeds, the incumbent on seeds it lacked: the seed_runs and incumbent_runs columns); those trainings have the
same budget on the same device, so each is counted at its row's first-training figures. Gains are quoted per
0.01 val_bpb because a night's gains are hundredths: "per 1 val_bpb" would read as a far larger number than
anything a run buys.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from research.judging.verdict import finite_or_none
from research.judging.finalize import Paired, paired
from research.records.finalize_table import FinalizeTable
from research.judging.pairing import parse_runs

GAIN_UNIT = 0.01  # val_bpb


def trainings(row: dict) -> int:
    """Trainings this row paid for: a skip none, a crash one, a decision its own runs plus the incumbent's new ones."""
    status = row.get("status")
    if status == "skip":
        return 0
    own = len(parse_runs(row.get("seed_runs"))) or 1
    return own + len(parse_runs(row.get("incumbent_runs")))


def training_hours(row: dict) -> float:
    return (finite_or_none(row.get("train_seconds")) or 0.0) * trainings(row) / 3600


@dataclass(frozen=True)
class RunCosts:
    trainings: int
    training_hours: float   # budgeted training time (what papers and other systems compare progress against)
    device_hours: float     # experiments' wall time, proposal to verdict: compile, evaluation and pairs included
    energy_kwh: float | None  # None: no row of the run was measured
    measured_rows: int      # rows with a measured energy (energy is left empty where the hardware has no meter)
    llm_tokens: int
    llm_cost_usd: float


def run_costs(rows: list[dict]) -> RunCosts:
    measured = [row for row in rows if finite_or_none(row.get("energy_kwh")) is not None]
    return RunCosts(
        trainings=sum(trainings(row) for row in rows),
        training_hours=sum(training_hours(row) for row in rows),
        device_hours=sum(finite_or_none(row.get("total_seconds")) or 0.0 for row in rows if row.get("status") != "skip") / 3600,
        energy_kwh=sum(finite_or_none(row["energy_kwh"]) * trainings(row) for row in measured) if measured else None,
        measured_rows=len(measured),
        llm_tokens=sum(int(row.get("llm_input_tokens") or 0) + int(row.get("llm_output_tokens") or 0) for row in rows),
        llm_cost_usd=sum(finite_or_none(row.get("llm_cost_usd")) or 0.0 for row in rows),
    )


def cumulative_training_hours(rows: list[dict]) -> list[tuple[int, float]]:
    """(exp, training hours spent up to and including it), in experiment order."""
    total, points = 0.0, []
    for row in sorted(rows, key=lambda r: int(r["exp"])):
        total += training_hours(row)
        points.append((int(row["exp"]), total))
    return points


def verified_gain(path: str | Path) -> Paired | None:
    """baseline - final over finalize.tsv's (RunLayout.finalize_table) paired seeds; None before `autoresearch
    finalize` wrote a pair."""
    path = Path(path)
    if not path.is_file():
        return None
    values: dict[str, dict[int, float]] = {}
    for record in FinalizeTable(path).rows():
        if record.get("val_bpb") is not None:
            values.setdefault(record["arm"], {})[int(record["seed"])] = record["val_bpb"]
    if "final" not in values:  # no keep: the final block is the baseline, trained once under its name
        values["final"] = values.get("baseline", {})
    gain = paired(values, "baseline", "final")
    return gain if gain.pairs else None


def per_gain(amount: float | None, gain: float | None) -> float | None:
    """`amount` per 0.01 val_bpb of `gain`; None when either is missing or nothing was gained."""
    if amount is None or gain is None or gain <= 0:
        return None
    return amount * GAIN_UNIT / gain


def cost_lines(costs: RunCosts, kept_gain: float | None, verified: Paired | None, experiments: int) -> list[str]:
    """The report's cost section, one fact a line."""
    energy = ("not measured (no energy counter on this hardware)" if costs.energy_kwh is None else
              f"{costs.energy_kwh:.4f} kWh (measured on {costs.measured_rows} of {experiments} experiments)")
    lines = [f"- Trainings: {costs.trainings}; training hours: {costs.training_hours:.3f}; "
             f"device hours (GPU-hours on a GPU): {costs.device_hours:.3f}",
             f"- Energy: {energy}",
             f"- LLM tokens: {costs.llm_tokens:,}; cost: ${costs.llm_cost_usd:.4f}"]
    gains = [("kept gain", kept_gain)]
    if verified is not None:
        gains.append(("verified gain", verified.mean))
    for name, gain in gains:
        dollars, kwh = per_gain(costs.llm_cost_usd, gain), per_gain(costs.energy_kwh, gain)
        if gain is None or gain <= 0:
            lines.append(f"- Per 0.01 val_bpb of {name}: n/a (no gain)")
            continue
        lines.append(f"- Per 0.01 val_bpb of {name} ({gain:.6f}): ${dollars:.4f} of LLM, "
                     + ("energy not measured" if kwh is None else f"{kwh:.4f} kWh")
                     + f", {costs.device_hours * GAIN_UNIT / gain:.3f} device hours")
    return lines


def cost_figures(rows: list[dict], kept_gain: float | None, verified: Paired | None) -> dict:
    """The suite summary's cost columns: per run, and per 0.01 val_bpb of the verified gain (the kept one
    before `autoresearch finalize`), `gain_basis` saying which."""
    costs = run_costs(rows)
    gain, basis = (verified.mean, "verified") if verified is not None else (kept_gain, "kept")
    return {"device_hours": costs.device_hours, "energy_kwh": costs.energy_kwh, "llm_tokens": costs.llm_tokens,
            "llm_cost_usd": costs.llm_cost_usd, "verified_gain": verified.mean if verified is not None else None,
            "gain_basis": basis, "llm_usd_per_gain": per_gain(costs.llm_cost_usd, gain),
            "kwh_per_gain": per_gain(costs.energy_kwh, gain)}
