"""Small text helpers shared by the sources: tolerant UTF-8 decoding, paragraph chunking, split choice."""
from __future__ import annotations

import hashlib
import re

REPLACEMENT = "\ufffd"
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def decode_utf8(raw: bytes) -> tuple[str, int]:
    """Decode bytes as UTF-8, replacing invalid sequences; return (text, number of invalid sequences).

    `tokenizers` aborts on invalid UTF-8, and one bad byte in a crawl should not kill a build, so bad
    sequences become U+FFFD and are counted (the count ends up in tokenizer/meta.json).
    """
    text = raw.decode("utf-8", errors="replace")
    # U+FFFD already present in valid input is not an error: subtract the encoded ones.
    return text, text.count(REPLACEMENT) - raw.count(REPLACEMENT.encode("utf-8"))


def paragraph_groups(text: str, max_chars: int) -> list[str]:
    """Cut a long text into documents of whole paragraphs, each at most max_chars (unless one paragraph is longer).

    A plain .txt file has no document boundaries of its own; without cutting, one book would be one
    document and the validation split (chosen per document) could not be drawn from it.
    """
    groups, current, size = [], [], 0
    for paragraph in PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip("\n")
        if not paragraph.strip():
            continue
        if current and size + len(paragraph) + 2 > max_chars:
            groups.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph)
        size += len(paragraph) + 2
    if current:
        groups.append("\n\n".join(current))
    return groups


def _hash_unit(text: str) -> float:
    """The document's place in [0, 1), from a hash of its content: the same on every machine."""
    digest = hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def is_validation(text: str, val_fraction: float) -> bool:
    """Deterministic split by content hash: the same document lands in the same split on every machine."""
    return _hash_unit(text) < val_fraction


def is_test(text: str, val_fraction: float, test_fraction: float) -> bool:
    """The held-out test split: the hash range just above validation's, so it takes documents from training
    only, and the validation split stays exactly what it was."""
    return val_fraction <= _hash_unit(text) < val_fraction + test_fraction
