"""results.tsv with hostile text: our reader gets the exact text back, pandas gets the same rows and columns."""
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.records.ledger import COLUMNS, Ledger

HOSTILE = [
    '"quoted at the start" and after',
    '"',
    '""',
    'tab\there, newline\nthere, cr\rthere, crlf\r\nend',
    "back\\slash \\t not a tab \\n not a newline \\",
    "\x00nul \x0b vt \x0c ff \x1c fs \x85 nel \u2028 ls \u2029 ps",
    "'single' \"double\" `back` #hash ,comma ;semi",
    "NA",
    "   leading and trailing spaces   ",
    "unicode: π ≈ 3.14159, 日本語, emoji 🤖",
    '\t"starts with a tab then a quote',
    'ends with a quote"',
    "\n\n\n",
]


def write_hostile(path, texts):
    ledger = Ledger(path)
    for exp, text in enumerate(texts):
        ledger.record({"exp": exp, "status": "discard", "val_bpb": 1.0 + exp, "description": text,
                       "reasoning": text[::-1], "error": text + text, "change": f"k={text}"})
    return ledger


def check_pandas(path, n):
    frame = pd.read_csv(path, sep="\t")
    assert frame.shape == (n, len(COLUMNS))
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["exp"]) == list(range(n))
    assert list(frame["val_bpb"]) == [1.0 + exp for exp in range(n)]
    return frame


def test_hostile_text_round_trips(tmp_path):
    path = tmp_path / "results.tsv"
    ledger = write_hostile(path, HOSTILE)
    rows = ledger.rows()
    assert [r["description"] for r in rows] == HOSTILE
    assert [r["reasoning"] for r in rows] == [t[::-1] for t in HOSTILE]
    assert [r["error"] for r in rows] == [t + t for t in HOSTILE]
    frame = check_pandas(path, len(HOSTILE))
    # Fields without escapes come back from pandas unchanged, quotes included.
    assert frame["description"][0] == HOSTILE[0]
    assert frame["description"][1] == '"'
    assert frame["description"][11] == 'ends with a quote"'


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=6))
def test_any_text_round_trips(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("ledger") / "results.tsv"
    ledger = write_hostile(path, texts)
    assert [r["description"] for r in ledger.rows()] == texts
    check_pandas(path, len(texts))
