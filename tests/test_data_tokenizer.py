"""Tokenizer: Unicode round trip, the byte-length table, special tokens, invalid UTF-8 accounting."""
from __future__ import annotations

import numpy as np
import pytest

from data.errors import DataError
from data.metric import load_token_bytes
from data.tokenizer import BOS, load_tokenizer, read_meta, train_tokenizer

UNICODE_SAMPLES = [
    "Hello, world! In the beginning was the Word.",
    "Café déjà vu — naïve façade, Ångström, Œuvre",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 🎉🚀👩‍💻 and flags 🇫🇷 mixed with text",
    "numbers 1234567 and   odd   spacing\n\n\ttabs\r\nCRLF",
    "",
]


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_round_trip_unicode(tiny_dataset, text):
    tokenizer = load_tokenizer(tiny_dataset["tokenizer_dir"])
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < tokenizer.vocab_size for i in ids)


def test_encode_batch_matches_encode(tiny_dataset):
    tokenizer = load_tokenizer(tiny_dataset["tokenizer_dir"])
    assert tokenizer.encode_batch(UNICODE_SAMPLES) == [tokenizer.encode(t) for t in UNICODE_SAMPLES]


def test_vocab_and_bos(tiny_dataset):
    tokenizer = load_tokenizer(tiny_dataset["tokenizer_dir"])
    meta = read_meta(tiny_dataset["tokenizer_dir"])
    assert tokenizer.vocab_size == meta["vocab_size"] == 512
    assert tokenizer.bos_id == meta["bos_id"] == tiny_dataset["manifest"]["bos_id"]
    assert tokenizer.id_to_token(tokenizer.bos_id) == BOS


def test_special_token_text_is_not_special(tiny_dataset):
    # A document that contains the literal text "<|bos|>" must not inject a document boundary.
    tokenizer = load_tokenizer(tiny_dataset["tokenizer_dir"])
    ids = tokenizer.encode(f"before {BOS} after")
    assert tokenizer.bos_id not in ids
    assert tokenizer.decode(ids) == f"before {BOS} after"


def test_token_bytes_sum_to_utf8_length(tiny_dataset):
    tokenizer = load_tokenizer(tiny_dataset["tokenizer_dir"])
    token_bytes = load_token_bytes(tiny_dataset["tokenizer_dir"])
    assert token_bytes.dtype == np.int32 and token_bytes.shape == (tokenizer.vocab_size,)
    for text in UNICODE_SAMPLES:
        assert int(token_bytes[tokenizer.encode(text)].sum()) == len(text.encode("utf-8"))


def test_token_bytes_zero_only_for_specials(tiny_dataset):
    token_bytes = load_token_bytes(tiny_dataset["tokenizer_dir"])
    specials = set(read_meta(tiny_dataset["tokenizer_dir"])["special_tokens"].values())
    assert all(token_bytes[i] == 0 for i in specials)
    assert all(token_bytes[i] >= 1 for i in range(token_bytes.size) if i not in specials)


def test_too_small_vocab_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="too small"):
        train_tokenizer(["some text"], tmp_path, vocab_size=100)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="No tokenizer"):
        load_tokenizer(tmp_path)


def test_training_twice_writes_identical_files(tmp_path):
    # DVC hashes the tokenizer folder: the same input must give the same bytes, or every repro looks like a change.
    texts = [sample for sample in UNICODE_SAMPLES if sample] * 20
    first, second = tmp_path / "first", tmp_path / "second"
    for out_dir in (first, second):
        out_dir.mkdir()
        train_tokenizer(texts, out_dir, vocab_size=300)
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(path.name for path in second.iterdir()) and len(names) == 3
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
