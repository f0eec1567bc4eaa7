"""The run's ledger: runs/<tag>/results.tsv, one row per experiment number, the source of truth of a run.

Format (chosen so that both this module and `pandas.read_csv(path, sep="\\t")` read the file back):
- UTF-8, one header line, one line per row, every line ends in "\\n" (so a line without one was cut off).
- Inside a field, backslash, tab, newline, carriage return and NUL are written as `\\\\`, `\\t`, `\\n`, `\\r`,
  `\\0`: a field never contains a tab or a line break, so splitting is trivial and a power cut cannot merge rows.
- A field that contains a double quote is wrapped in quotes with inner quotes doubled (CSV style). Without
  this, pandas' default quoting would read a field that starts with `"` as a quoted field and could swallow
  the tabs after it, changing the number of columns.
- Empty field = None. Numbers are written with repr() so floats come back bit-identical.

Writes rewrite the whole file atomically (common.atomic): the file is small (thousands of rows), and a reader
then sees the old file or the new one, never half a row. Reading never writes: a truncated last line (a
non-atomic external edit, a partial line) is dropped with a warning and disappears from disk at the next
record(). Reading never writes because `autoresearch status` reads while the run writes.
"""
from __future__ import annotations

import logging
import math
import numbers
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text

log = logging.getLogger(__name__)

# Ordered; the seed's six columns come first so the file stays readable by the seed's tools.
COLUMNS: tuple[str, ...] = (
    "exp", "description", "val_bpb", "mfu", "status", "baseline_sha",
    "change", "key", "value", "previous", "delta", "best_val_bpb",
    # the paired decision (research/judging/verdict.py): who it was paired with, on which seeds, the gain and the test
    "paired_exp", "paired_seeds", "paired_delta", "paired_se", "verdict", "seed_runs", "incumbent_runs",
    # the machine's speed per run and the adjustment the paired figures carry (research/judging/speed.py), the change's kind
    "seed_speeds", "incumbent_speeds", "speed_slope", "adjusted_val_bpb", "change_kind",
    "steps", "tokens", "tokens_per_second", "peak_memory_gb", "num_params_M",
    # the block's fit predicted before it ran (training/fit.py) beside what the training measured: peak memory of
    # live tensors and optimizer steps (measured steps: `steps`), and a sentence when it was skipped or lowered
    "predicted_peak_gb", "measured_peak_gb", "predicted_steps", "fit",
    "train_seconds", "total_seconds",
    "backend", "device_name", "dataset", "data_version", "code_version", "seed",
    "proposer", "llm_model", "llm_input_tokens", "llm_output_tokens", "llm_cost_usd",
    "energy_kwh",
    "commit_sha", "reasoning", "error", "started_at", "finished_at",
)
STATUSES: tuple[str, ...] = ("baseline", "keep", "discard", "crash", "skip")

INT_COLUMNS = frozenset({"exp", "steps", "tokens", "seed", "llm_input_tokens", "llm_output_tokens", "paired_exp",
                         "predicted_steps"})
FLOAT_COLUMNS = frozenset({
    "val_bpb", "mfu", "delta", "best_val_bpb", "paired_delta", "paired_se", "speed_slope", "adjusted_val_bpb", "tokens_per_second", "peak_memory_gb", "num_params_M",
    "train_seconds", "total_seconds", "llm_cost_usd", "energy_kwh", "predicted_peak_gb", "measured_peak_gb",
})
# Everything else is text. `value` stays text on purpose: it is the hyperparameter value as written in the
# override (`0.04`, `true`, `SSSL`), and guessing its type here would be a second source of truth.

HEADER = "\t".join(COLUMNS)
# Ledgers written before the paired columns, the speed columns or the fit columns existed are read (those columns
# empty) and upgraded on the next write.
PAIRED_COLUMNS = ("paired_exp", "paired_seeds", "paired_delta", "paired_se", "verdict", "seed_runs", "incumbent_runs")
SPEED_COLUMNS = ("seed_speeds", "incumbent_speeds", "speed_slope", "adjusted_val_bpb", "change_kind")
FIT_COLUMNS = ("predicted_peak_gb", "measured_peak_gb", "predicted_steps", "fit")
EARLIER_LAYOUTS: dict[str, tuple[str, ...]] = {
    "\t".join(columns): columns for columns in (
        tuple(c for c in COLUMNS if c not in PAIRED_COLUMNS + SPEED_COLUMNS + FIT_COLUMNS),
        tuple(c for c in COLUMNS if c not in SPEED_COLUMNS + FIT_COLUMNS),
        tuple(c for c in COLUMNS if c not in FIT_COLUMNS))}

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "0": "\0"}
_ESCAPE_RE = re.compile(r"[\\\t\n\r\0]")
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def status_counts(rows: list[dict]) -> dict:
    """Rows by status, e.g. {"baseline": 2, "keep": 1, "discard": 3}."""
    return dict(Counter(row.get("status") for row in rows))


class LedgerError(ValueError):
    """results.tsv cannot be read or a row cannot be written; the message says what to do."""


def escape_field(text: str) -> str:
    escaped = _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)
    if '"' in escaped:
        escaped = '"' + escaped.replace('"', '""') + '"'
    return escaped


def unescape_field(field: str) -> str:
    if field.startswith('"'):
        if len(field) < 2 or not field.endswith('"'):
            raise ValueError("unterminated quoted field")
        field = field[1:-1].replace('""', '"')
    # An unknown escape keeps its character (a lone trailing backslash cannot occur in what we write).
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), field)


def _format_value(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value) and column in FLOAT_COLUMNS:
        return ""  # pandas turns missing numbers into NaN; store them as missing, not as the text "nan"
    if column in INT_COLUMNS:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            if isinstance(value, numbers.Real) and float(value).is_integer():
                value = int(value)
            else:
                raise LedgerError(f"Column {column} needs a whole number, got {value!r}; fix the value passed to the ledger.")
        return str(int(value))
    if column in FLOAT_COLUMNS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise LedgerError(f"Column {column} needs a number, got {value!r}; fix the value passed to the ledger.")
        return repr(float(value))
    if isinstance(value, (dict, list, tuple, set)):
        raise LedgerError(f"Column {column} needs a plain value, got a {type(value).__name__}; pass text or a number.")
    return escape_field(str(value))


def _parse_value(column: str, field: str) -> Any:
    if field == "":
        return None
    if column in INT_COLUMNS:
        number = float(field) if any(c in field for c in ".eE") else int(field)
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError(f"{column}={field!r} is not a whole number")
            number = int(number)
        return number
    if column in FLOAT_COLUMNS:
        return float(field)
    return unescape_field(field)


def format_row(row: dict) -> str:
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise LedgerError(f"Unknown results.tsv column(s) {', '.join(unknown)}; use only the names in research.records.ledger.COLUMNS.")
    if row.get("exp") is None:
        raise LedgerError("A results.tsv row needs its experiment number in 'exp'.")
    if row.get("status") is not None and row["status"] not in STATUSES:
        raise LedgerError(f"Status {row['status']!r} is not one of {', '.join(STATUSES)}; fix the row's status.")
    return "\t".join(_format_value(column, row.get(column)) for column in COLUMNS)


def parse_line(line: str, columns: tuple[str, ...] = COLUMNS) -> dict:
    fields = line.split("\t")
    if len(fields) != len(columns):
        raise ValueError(f"{len(fields)} fields instead of {len(columns)}")
    row = dict.fromkeys(COLUMNS)
    row.update({column: _parse_value(column, field) for column, field in zip(columns, fields)})
    return row


class Ledger:
    """results.tsv of one run. Re-reads the file on every call: the file, not this object, is the truth."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- reading ---------------------------------------------------------------------------------------
    def _load(self) -> tuple[list[dict], list[str]]:
        """Rows (typed) and their lines exactly as on disk, in file order, after repairing a cut-off tail."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        # A power cut can cut a multi-byte character; that line is dropped below, so never crash on decoding.
        text = raw.decode("utf-8", errors="replace")
        if text.startswith("\ufeff"):
            text = text[1:]  # a BOM from a spreadsheet round trip
        if not text.strip():
            return [], []
        # split("\n"), not splitlines(): splitlines also breaks on \x0b, \x1c, \u2028 ... which may sit
        # unescaped inside a field, and pandas does not break on them either.
        lines = text.split("\n")
        ends_with_newline = lines[-1] == ""
        if ends_with_newline:
            lines.pop()
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]  # tolerate CRLF editors

        header = lines[0]
        columns = EARLIER_LAYOUTS.get(header, COLUMNS)
        if header != HEADER and header not in EARLIER_LAYOUTS:
            if not ends_with_newline and len(lines) == 1 and HEADER.startswith(header):
                log.warning("%s holds only a cut-off header; treating it as empty.", self.path)
                return [], []
            raise LedgerError(
                f"{self.path} has a header that this version does not write (expected the columns of "
                f"research.records.ledger.COLUMNS); move the file aside or choose another tag.")

        rows: list[dict] = []
        kept_lines: list[str] = []
        seen: set[int] = set()
        last = len(lines) - 1
        for number, line in enumerate(lines[1:], start=1):
            if line.strip() == "":
                continue  # pandas skips blank lines as well
            is_last = number == last
            if is_last and not ends_with_newline:
                # Every line we write ends in a newline, so this one was cut off mid-write.
                log.warning("%s: dropping the cut-off last line %d (%r...).", self.path, number + 1, line[:60])
                continue
            try:
                row = parse_line(line, columns)
            except ValueError as err:
                if is_last:
                    log.warning("%s: dropping the damaged last line %d (%s).", self.path, number + 1, err)
                    continue
                raise LedgerError(
                    f"{self.path} line {number + 1} is damaged ({err}); fix or delete that line.") from None
            if row["exp"] is None:
                raise LedgerError(f"{self.path} line {number + 1} has no experiment number; fix or delete that line.")
            if row["exp"] in seen:
                log.warning("%s: line %d repeats experiment %d; keeping the first.", self.path, number + 1, row["exp"])
                continue
            seen.add(row["exp"])
            rows.append(row)
            kept_lines.append(format_row(row) if columns is not COLUMNS else line)
        return rows, kept_lines

    def rows(self) -> list[dict]:
        """Every row, typed back (int, float, str or None), in file order (= experiment order)."""
        return self._load()[0]

    def get(self, exp: int) -> dict | None:
        for row in self.rows():
            if row["exp"] == exp:
                return row
        return None

    def exps(self) -> set[int]:
        return {row["exp"] for row in self.rows()}

    def next_exp(self) -> int:
        """The next experiment number: 0 (the baseline) for an empty ledger."""
        rows = self.rows()
        return max(row["exp"] for row in rows) + 1 if rows else 0

    def to_dataframe(self):
        import pandas as pd  # only here: the ledger itself needs no pandas

        return pd.DataFrame(self.rows(), columns=list(COLUMNS))

    # -- writing ---------------------------------------------------------------------------------------
    def record(self, row: dict) -> bool:
        """Append one row; False (and nothing written) when a row for this experiment already exists.

        Idempotent on purpose: a task re-run after a crash records its experiment again, and that must not
        make a second row. Missing columns are written empty; unknown columns are an error.
        """
        line = format_row(row)  # validate before touching the file
        rows, lines = self._load()
        exp = int(row["exp"])
        if any(existing["exp"] == exp for existing in rows):
            return False
        atomic_write_text(self.path, "\n".join([HEADER, *lines, line]) + "\n")
        return True
