"""What Claude reads: a stable, cacheable system part (role, rules, search space) and a per-experiment user part.

The text is deterministic for a given context (no timestamps, stable ordering) and compact: the last
`full_rows` history rows in full, older rows summarised as counts per key and status.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

from research.judging.verdict import paired_deltas
from research.proposing.space import Space, as_space, canonical_text, format_value, get_value

TOOL_NAME = "propose_change"
FULL_ROWS = 30
STAGNATION_AFTER = 5
ERROR_LINES = 3
CRASHES_SHOWN = 3


def _fmt_num(value: Any, digits: int = 6) -> str:
    if value is None or value == "":
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN
        return "nan"
    return format(number, f".{digits}g")


def _one_line(text: Any, limit: int) -> str:
    text = " ".join(str(text if text is not None else "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def system_text(space: Space | Mapping[str, Any]) -> str:
    """Role, rules and the search space: identical for every experiment of a run, so it is cached."""
    space = as_space(space)
    lines = [
        "You are an ML research scientist tuning a small GPT language model, one experiment at a time.",
        "Each experiment changes ONE hyperparameter of the block below, trains for a fixed time budget on the "
        "given hardware, and measures val_bpb (validation bits per byte; lower is better). A change is kept only "
        "if it beats the best so far by more than the keep threshold (measured noise); otherwise it is discarded.",
        "",
        "Rules:",
        f"- Answer by calling the {TOOL_NAME} tool exactly once, with exactly four fields: key (a search-space key), "
        "value (a JSON number, boolean or string of the declared type, inside the bounds), description (a few words "
        "saying what the change is) and reasoning (why you expect it to lower val_bpb).",
        "- Change ONE key, to a value different from its current value, that has not been tried from the same "
        "base and is not in flight. Respect the bounds, the choices and the constraints.",
        "- The value is data: a literal number, true/false or a plain word. No expressions, no interpolation, "
        "no lists, no extra keys.",
        "- The budget is fixed wall-clock time: a bigger model or batch trains on fewer tokens. Think about "
        "throughput as well as capacity, and about the noise: small effects are not distinguishable.",
        "- If an answer is rejected you get the reason; fix it and answer again.",
        "",
        "Search space (key: type and bounds - description):",
    ]
    for key, param in space.params.items():
        lines.append(f"- {key}: {param.bounds_text()} - {param.description}")
    if space.constraints:
        lines.append("")
        lines.append("Constraints:")
        for name, text in space.constraints.items():
            lines.append(f"- {name}: {text}")
    return "\n".join(lines)


def _current_block(space: Space, hparams: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, param in space.params.items():
        try:
            value = get_value(hparams, key)
        except KeyError:
            continue
        lines.append(f"{key}={format_value(param, value)}")
    return lines


def _gain(row: Mapping[str, Any]) -> float | None:
    delta = row.get("delta")
    try:
        return -float(delta) if delta not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _change_text(row: Mapping[str, Any], space: Space) -> str:
    key, value = row.get("key"), row.get("value")
    if not key:
        return str(row.get("change") or "-")
    if key in space and value is not None:
        try:
            return f"{key}={canonical_text(space[key], value)}"
        except (TypeError, ValueError):
            pass
    return f"{key}={value}"


def _paired_text(delta, standard_error) -> str:
    text = _fmt_num(delta, 3)
    return text + (f" +- {_fmt_num(standard_error, 2)}" if delta is not None and standard_error is not None else "")


def build_prompt(context: Any, *, full_rows: int = FULL_ROWS, stagnation_after: int = STAGNATION_AFTER,
                 error_lines: int = ERROR_LINES) -> tuple[list[dict], str]:
    """(system_blocks, user_text) for a ProposalContext. The system block carries cache_control. The user part is
    its sections in order, each a list of lines (an empty section is left out)."""
    space = as_space(context.space)
    system_blocks = [{"type": "text", "text": system_text(space), "cache_control": {"type": "ephemeral"}}]
    history = list(context.history or [])
    experiments = [r for r in history if r.get("status") != "baseline"]
    out = ["## Current block (resolved values)", *_current_block(space, context.hparams)]
    out += _setting_section(context)
    out += _fit_section(context, space)
    out += _history_section(context, space, history, experiments, full_rows)
    out += _per_key_section(space, experiments)
    out += _stagnation_section(experiments, stagnation_after)
    out += _crashes_section(space, experiments, error_lines)
    out += _in_flight_section(space, context.in_flight)
    out += ["", f"Propose the single most promising next change with the {TOOL_NAME} tool."]
    return system_blocks, "\n".join(out)


def _setting_section(context: Any) -> list[str]:
    out = ["", "## Setting", f"hardware: {context.hardware or 'unknown'}", f"budget: {context.budget or 'unknown'}"]
    if context.seq_len:
        out.append(f"seq_len: {context.seq_len}")
    out.append(
        f"baseline val_bpb: {_fmt_num(context.baseline_val_bpb)}; best val_bpb: {_fmt_num(context.best_val_bpb)}; "
        f"noise sigma: {_fmt_num(context.noise_sigma, 3)}"
    )
    margin = context.keep_margin
    if margin is not None:
        out.append(f"keep threshold: a change is kept at once when its first paired run beats the best by more than "
                   f"{_fmt_num(margin, 3)}; a smaller gain that looks real is re-run on more seeds before a verdict")
    return out


def _fit_section(context: Any, space: Space) -> list[str]:
    if getattr(context, "fit", None) is None:
        return []
    from research.proposing.headroom import headroom_lines

    return ["", "## Device fit (predicted before training; a block that does not fit is skipped, not trained)",
            *headroom_lines(context.fit, space, context.hparams)]


def _history_section(context: Any, space: Space, history: list[dict], experiments: list[dict],
                     full_rows: int) -> list[str]:
    """Older rows as counts per key and status, the last `full_rows` in full."""
    out = ["", f"## History ({len(experiments)} experiments; negative is better. delta = val_bpb - best before; "
               "paired = val_bpb - the block it started from on the same seed(s), mean over the pairs +- its "
               "standard error: free of seed luck, what the keep rule judges)"]
    paired = paired_deltas(history, (context.hparams or {}).get("seed"))
    older, recent = history[:-full_rows] if full_rows else history, history[-full_rows:] if full_rows else []
    if older:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in older:
            label = "(baseline)" if row.get("status") == "baseline" else str(row.get("key") or "-")
            counts[label][str(row.get("status") or "-")] += 1
        out.append(f"older rows ({len(older)}), counts per key and status:")
        for key in sorted(counts):
            parts = ", ".join(f"{status} {n}" for status, n in sorted(counts[key].items()))
            out.append(f"  {key}: {parts}")
    if not recent:
        return out + ["(no experiments yet)"]
    out.append("exp | change | val_bpb | delta | paired | status | description")
    for row in recent:
        out.append(" | ".join([
            str(row.get("exp", "-")),
            _change_text(row, space) if row.get("status") != "baseline" else "(baseline)",
            _fmt_num(row.get("val_bpb")),
            _fmt_num(row.get("delta"), 3),
            _paired_text(paired.get(int(row.get("exp", -1))), row.get("paired_se")),
            str(row.get("status") or "-"),
            _one_line(row.get("description"), 70),
        ]))
    return out


def _per_key_section(space: Space, experiments: list[dict]) -> list[str]:
    stats: dict[str, dict[str, Any]] = {}
    for row in experiments:
        key = row.get("key")
        if key not in space:
            continue
        entry = stats.setdefault(key, {"tried": 0, "kept": 0, "crash": 0, "best": None})
        entry["tried"] += 1
        status = row.get("status")
        if status == "keep":
            entry["kept"] += 1
        if status == "crash":
            entry["crash"] += 1
        gain = _gain(row)
        if gain is not None and status in ("keep", "discard") and (entry["best"] is None or gain > entry["best"]):
            entry["best"] = gain
    if not stats:
        return []
    out = ["", "## Per key (tried / kept / crashed / best gain in val_bpb)"]
    for key in space.keys:
        if key in stats:
            e = stats[key]
            out.append(f"{key}: {e['tried']} / {e['kept']} / {e['crash']} / {_fmt_num(e['best'], 3)}")
    untouched = [k for k in space.keys if k not in stats]
    if untouched:
        out.append("never tried: " + ", ".join(untouched))
    return out


def _stagnation_section(experiments: list[dict], stagnation_after: int) -> list[str]:
    tail = experiments[-stagnation_after:] if stagnation_after else []
    if not (stagnation_after and len(tail) == stagnation_after and all(r.get("status") != "keep" for r in tail)):
        return []
    return ["", f"## Stagnation: the last {stagnation_after} experiments were all non-keeps. Try a different key or a "
                "bolder step than the recent ones."]


def _crashes_section(space: Space, experiments: list[dict], error_lines: int) -> list[str]:
    crashes = [r for r in experiments if r.get("status") == "crash" and r.get("error")][-CRASHES_SHOWN:]
    if not crashes:
        return []
    out = ["", "## Recent crashes (last lines of the error)"]
    for row in crashes:
        lines = [ln for ln in str(row.get("error")).splitlines() if ln.strip()][-error_lines:]
        out.append(f"exp {row.get('exp', '-')} {_change_text(row, space)}:")
        out.extend("  " + _one_line(ln, 160) for ln in lines)
    return out


def _in_flight_section(space: Space, in_flight: list | None) -> list[str]:
    if not in_flight:
        return []
    from research.proposing.proposers.base import in_flight_pair

    out = ["", "## In flight (running now from the same base; do not propose these)"]
    for item in in_flight:
        key, value = in_flight_pair(item)
        text = f"{key}={canonical_text(space[key], value)}" if key in space else f"{key}={value}"
        out.append(f"- {text}")
    return out
