"""Byte-level BPE tokenizer: training (the tokenizer stage) and loading (training and evaluation).

GPT-4-style pre-tokenization (the cl100k split pattern, which keeps digits in runs of at most three and
splits words from punctuation), then byte-level BPE so any text, emoji and CJK included, round-trips.
Special tokens take the first ids; they are never produced from ordinary text.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_json
from data.errors import DataError

BOS = "<|bos|>"
# Reserved now so chat-style fine-tuning can be added later without changing the vocabulary layout.
SPECIAL_TOKENS = [BOS, "<|eos|>", "<|pad|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>"]
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
TOKENIZER_FILE = "tokenizer.json"
TOKEN_BYTES_FILE = "token_bytes.npy"
META_FILE = "meta.json"


def _byte_level_alphabet() -> dict[str, int]:
    """Map each character of the byte-level alphabet back to the byte it stands for.

    Byte-level BPE spells byte b as a printable character: printable Latin-1 bytes as themselves, the
    other 68 bytes as code points 256, 257, ... in byte order. Inverting that gives token byte lengths.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + extra)] = b
            extra += 1
    return mapping


def _new_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts, out_dir: str | Path, vocab_size: int, invalid_utf8_sequences: int = 0,
                    extra_meta: dict | None = None) -> dict:
    """Train on `texts` (an iterable of str or of lists of str) and write tokenizer.json, token_bytes.npy, meta.json."""
    from tokenizers import pre_tokenizers, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise DataError(f"vocab_size {vocab_size} is too small; use at least {256 + len(SPECIAL_TOKENS)} (256 bytes plus special tokens).")
    out_dir = Path(out_dir)
    started = time.time()
    counter = {"characters": 0}

    def counted(batches):
        for batch in batches:
            batch = [batch] if isinstance(batch, str) else batch
            counter["characters"] += sum(map(len, batch))
            yield batch

    tokenizer = _new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: nothing is unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator(counted(texts), trainer=trainer)
    # Text that happens to contain "<|bos|>" must encode as ordinary characters, not as BOS.
    tokenizer.encode_special_tokens = True
    payload = tokenizer.to_str().encode("utf-8")
    atomic_write_bytes(out_dir / TOKENIZER_FILE, payload)
    token_bytes = token_byte_lengths(tokenizer)
    np.save(out_dir / TOKEN_BYTES_FILE, token_bytes)
    meta = {
        "vocab_size": tokenizer.get_vocab_size(),
        "bos_id": tokenizer.token_to_id(BOS),
        "special_tokens": {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS},
        "split_pattern": SPLIT_PATTERN,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "training_characters": counter["characters"],
        "invalid_utf8_sequences": invalid_utf8_sequences,
        **(extra_meta or {}),
    }
    # The time is printed, not stored: meta.json is a DVC output and must not change when nothing else does.
    atomic_write_json(out_dir / META_FILE, meta)
    print(f"tokenizer: vocab {meta['vocab_size']} from {counter['characters']} characters, "
          f"{time.time() - started:.1f} s", flush=True)
    return meta


def token_byte_lengths(tokenizer) -> np.ndarray:
    """int32[vocab]: UTF-8 byte length of each token's text; 0 for special tokens (they stand for no text)."""
    alphabet = _byte_level_alphabet()
    lengths = np.zeros(tokenizer.get_vocab_size(), dtype=np.int32)
    specials = set(SPECIAL_TOKENS)
    for token, token_id in tokenizer.get_vocab().items():
        if token not in specials:
            lengths[token_id] = sum(1 for ch in token if ch in alphabet)
    return lengths


class Tokenizer:
    """What training and evaluation need from a trained tokenizer; ids never include BOS implicitly."""

    def __init__(self, directory: str | Path):
        from tokenizers import Tokenizer as HFTokenizer

        directory = Path(directory)
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise DataError(f"No tokenizer at {path}; build it with `autoresearch prepare` or `dvc repro`.")
        self.directory = directory
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self._tokenizer = HFTokenizer.from_file(str(path))
        self._tokenizer.encode_special_tokens = True
        self.bos_id = self._tokenizer.token_to_id(BOS)
        self.vocab_size = self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # encode_batch runs on all cores (Rust threads); the _fast variant skips offset bookkeeping.
        return [enc.ids for enc in self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=False)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tokenizer.id_to_token(token_id)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    return Tokenizer(directory)


def read_meta(directory: str | Path) -> dict:
    return json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
