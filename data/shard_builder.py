"""The shards stage: encode the corpus with the trained tokenizer into fixed-size binary shards + manifest.

Each document becomes [BOS, ids...]. A shard holds whole documents and is closed before it would pass
shard_tokens (a single document longer than that gets a shard of its own), so the loader can find every
document boundary by looking for BOS without stitching shards together.
"""
from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes, atomic_write_json
from data.corpus import iter_corpus_texts, present_splits
from data.errors import DataError
from data.shards import MANIFEST_FILE, compute_data_version, token_dtype
from data.tokenizer import load_tokenizer

ENCODE_BATCH_DOCS = 1024


class ShardWriter:
    def __init__(self, out_dir: Path, split: str, shard_tokens: int, dtype: np.dtype):
        self.out_dir, self.split, self.shard_tokens, self.dtype = out_dir, split, shard_tokens, dtype
        self.pieces: list[np.ndarray] = []
        self.tokens = 0
        self.documents = 0
        self.entries: list[dict] = []

    def add_batch(self, flat: np.ndarray, doc_lengths: np.ndarray) -> None:
        """Add a batch of concatenated documents (flat) with their lengths, splitting only between documents."""
        starts = np.concatenate(([0], np.cumsum(doc_lengths)))
        first = 0
        while first < len(doc_lengths):
            room = self.shard_tokens - self.tokens
            # How many of the next documents fit in the room left (at least one if the shard is empty).
            fit = int(np.searchsorted(starts[first + 1:] - starts[first], room, side="right"))
            if fit == 0 and self.tokens == 0:
                fit = 1
            if fit == 0:
                self.flush()
                continue
            last = first + fit
            self.pieces.append(flat[starts[first]:starts[last]])
            self.tokens += int(starts[last] - starts[first])
            self.documents += fit
            first = last
            if self.tokens >= self.shard_tokens:
                self.flush()

    def flush(self) -> None:
        if not self.tokens:
            return
        payload = np.concatenate(self.pieces).astype(self.dtype, copy=False).tobytes()
        name = f"{self.split}_{len(self.entries):05d}.bin"
        atomic_write_bytes(self.out_dir / name, payload)
        self.entries.append({
            "file": name, "split": self.split, "sha256": hashlib.sha256(payload).hexdigest(),
            "tokens": self.tokens, "documents": self.documents,
        })
        self.pieces, self.tokens, self.documents = [], 0, 0


def _encode(tokenizer, texts: list[str], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """One batch -> (flat [BOS, ids..., BOS, ids...], per-document lengths including BOS)."""
    encoded = tokenizer.encode_batch(texts)
    lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
    flat = np.empty(int(lengths.sum()), dtype=dtype)
    position = 0
    for ids in encoded:
        flat[position] = tokenizer.bos_id
        flat[position + 1:position + 1 + len(ids)] = ids
        position += len(ids) + 1
    return flat, lengths


def build_shards(corpus: str | Path, tokenizer_dir: str | Path, out_dir: str | Path, dataset: str,
                 shard_tokens: int) -> dict:
    """Encode corpus/{train,val[,test]} into out_dir (which must be empty or new); write and return the manifest.
    The test split, when the corpus has one, is encoded with the same tokenizer and listed with its sha256 like
    the others."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    dtype = token_dtype(tokenizer.vocab_size)
    started = time.time()
    entries, characters = [], {}
    corpus_meta = json.loads((Path(corpus) / "meta.json").read_text(encoding="utf-8"))
    splits = present_splits(corpus_meta.get("documents", {}))
    # Encoding runs in the tokenizer's Rust threads with the GIL released; overlapping the next batch's
    # encoding with this batch's copy into numpy keeps both cores busy.
    with ThreadPoolExecutor(max_workers=1) as pool:
        for split in splits:
            writer = ShardWriter(out_dir, split, int(shard_tokens), dtype)
            characters[split] = 0
            pending = None
            for texts in iter_corpus_texts(corpus, split, ENCODE_BATCH_DOCS):
                characters[split] += sum(map(len, texts))
                future = pool.submit(_encode, tokenizer, texts, dtype)
                if pending is not None:
                    writer.add_batch(*pending.result())
                pending = future
            if pending is not None:
                writer.add_batch(*pending.result())
            writer.flush()
            if not writer.entries:
                raise DataError(f"The corpus at {corpus} has no {split} documents; rebuild it with `dvc repro` or check the dataset's files.")
            entries += writer.entries
    manifest = {
        "dataset": dataset,
        "source_files": corpus_meta.get("source_files", []),
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "dtype": dtype.str,
        "bos_id": tokenizer.bos_id,
        "shard_tokens": int(shard_tokens),
        "shards": entries,
        "tokens": {split: sum(e["tokens"] for e in entries if e["split"] == split) for split in splits},
        "documents": {split: sum(e["documents"] for e in entries if e["split"] == split) for split in splits},
        "characters": characters,
    }
    manifest["data_version"] = compute_data_version(manifest)
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    print(f"shards: {manifest['tokens']} tokens in {len(entries)} shards, {time.time() - started:.1f} s", flush=True)
    return manifest
