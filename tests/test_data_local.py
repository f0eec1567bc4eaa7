"""The local folder source: .txt, .jsonl and .parquet files, the env override, empty folders, invalid UTF-8."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.corpus import build_corpus, iter_corpus_texts
from data.errors import DataError
from data.stages import run_tokenizer
from data.tokenizer import read_meta

SPEC = {"name": "mine", "source": "local", "path": "my_corpus", "text_column": "text",
        "val_fraction": 0.2, "txt_document_chars": 200, "vocab_size": 300}


def _texts(root, split):
    return [text for batch in iter_corpus_texts(root / "datasets" / "mine" / "corpus", split) for text in batch]


def _fill(folder):
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = [f"Paragraph {i} of the plain text file, with some words in it." for i in range(20)]
    (folder / "book.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    rows = [{"text": f"json line document {i}", "other": i} for i in range(10)]
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": [f"parquet row {i}" for i in range(10)]}), folder / "table.parquet")
    (folder / "ignored.csv").write_text("not,read\n")


def test_reads_txt_jsonl_and_parquet(tmp_path):
    _fill(tmp_path / "my_corpus")
    meta = build_corpus("mine", tmp_path, spec=SPEC)
    everything = _texts(tmp_path, "train") + _texts(tmp_path, "val")
    assert sum(meta["documents"].values()) == len(everything)
    assert meta["documents"]["val"] >= 1 and meta["documents"]["train"] >= 1
    assert sum("json line document" in t for t in everything) == 10
    assert sum(t.startswith("parquet row") for t in everything) == 10
    paragraphs = [t for t in everything if t.startswith("Paragraph")]
    assert len(paragraphs) > 1 and all(len(t) <= 200 for t in paragraphs)  # the .txt was cut into documents
    assert not any("not,read" in t for t in everything)


def test_env_var_overrides_the_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    _fill(elsewhere)
    monkeypatch.setenv("AUTORESEARCH_LOCAL_DIR", str(elsewhere))
    meta = build_corpus("mine", tmp_path, spec=SPEC)
    assert sum(meta["documents"].values()) > 20


@pytest.mark.parametrize("make_folder", [False, True])
def test_missing_or_empty_folder_is_one_sentence(tmp_path, monkeypatch, make_folder):
    monkeypatch.delenv("AUTORESEARCH_LOCAL_DIR", raising=False)
    if make_folder:
        (tmp_path / "my_corpus").mkdir()
    with pytest.raises(DataError) as error:
        build_corpus("mine", tmp_path, spec=SPEC)
    message = str(error.value)
    assert "my_corpus" in message and ("is empty" if make_folder else "does not exist") in message
    assert "AUTORESEARCH_LOCAL_DIR" in message


def test_failed_build_keeps_the_previous_corpus(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTORESEARCH_LOCAL_DIR", raising=False)
    _fill(tmp_path / "my_corpus")
    build_corpus("mine", tmp_path, spec=SPEC)
    before = _texts(tmp_path, "train")
    (tmp_path / "my_corpus" / "sub" / "notes.jsonl").write_text("{broken json\n")
    with pytest.raises(DataError, match="notes.jsonl"):
        build_corpus("mine", tmp_path, spec=SPEC)
    assert _texts(tmp_path, "train") == before


def test_invalid_utf8_is_replaced_and_counted(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTORESEARCH_LOCAL_DIR", raising=False)
    folder = tmp_path / "my_corpus"
    folder.mkdir()
    good = "".join(f"Sentence {i} is fine.\n\n" for i in range(30)).encode()
    (folder / "bad.txt").write_bytes(good + b"broken \xff\xfe bytes and \xc3 here\n\n" + good)
    (folder / "bad.jsonl").write_bytes(b'{"text": "json \xff bad"}\n{"text": "json fine"}\n')
    meta = build_corpus("mine", tmp_path, spec=SPEC)
    assert meta["invalid_utf8_sequences"] == 4  # \xff, \xfe, lone \xc3 in the .txt; \xff in the .jsonl
    everything = _texts(tmp_path, "train") + _texts(tmp_path, "val")
    assert any("\ufffd" in t for t in everything)
    tokenizer_meta = run_tokenizer("mine", tmp_path, spec=SPEC)
    assert tokenizer_meta["invalid_utf8_sequences"] == 4 == read_meta(tmp_path / "datasets" / "mine" / "tokenizer")["invalid_utf8_sequences"]
