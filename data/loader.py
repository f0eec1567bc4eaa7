"""Batches for training and evaluation, straight from memory-mapped shards. numpy only.

Training rows are packed best-fit from BOS-started pieces of documents; validation rows are a plain
contiguous walk over the validation split. The training process imports this module: it must not import
prefect, hydra, dvc, tokenizers or torch.
"""
from __future__ import annotations

from bisect import bisect_right
from pathlib import Path
from typing import Iterator

import numpy as np

from data.errors import DataError
from data.shards import open_shard, read_manifest, shard_paths

BUFFER_PIECES = 1000  # candidates the packer chooses from: more = fuller rows, slower per pick
# Passes over one training split after which more training mostly memorises it: the loader says so, once.
WARN_AFTER_PASSES = 4


class TrainLoader:
    """Endless, deterministic iterator of (inputs, targets), int64 arrays of shape (batch_size, seq_len).

    Each row holds seq_len + 1 tokens (targets are inputs shifted by one). Documents longer than a row
    are cut into pieces of at most seq_len + 1 tokens; every piece after the first gets a BOS in front,
    so every piece, and therefore every row, starts with BOS and no text is dropped by the cut. A row is
    filled by repeatedly taking the longest buffered piece that still fits (best fit); only when none
    fits is the shortest one cropped to close the row, and its cropped tail is dropped (the only waste,
    counted in `tokens_dropped`). The piece order is reshuffled every epoch from (seed, epoch); only
    training shards are opened.
    """

    def __init__(self, shard_dir: str | Path, batch_size: int, seq_len: int, seed: int = 0,
                 buffer_pieces: int = BUFFER_PIECES):
        manifest = read_manifest(shard_dir)
        self.batch_size, self.seq_len, self.seed = int(batch_size), int(seq_len), int(seed)
        self.row_len = self.seq_len + 1
        self.bos_id = int(manifest["bos_id"])
        self.buffer_pieces = int(buffer_pieces)
        train = shard_paths(shard_dir, "train", manifest)
        if not train:
            raise DataError(f"The manifest in {shard_dir} lists no training shards; rebuild with `dvc repro`.")
        self.shard_files = [path for path, _ in train]
        self.shards = [open_shard(path, entry, manifest) for path, entry in train]
        self.train_tokens = sum(int(tokens.size) for tokens in self.shards)
        self._index_pieces()
        self.epoch = -1
        self._order = np.empty(0, dtype=np.int64)
        self._cursor = 0
        self._buffer_lengths: list[int] = []
        self._buffer_pieces: list[int] = []
        self.tokens_dropped = 0
        self.tokens_yielded = 0

    def _index_pieces(self) -> None:
        shard_ids, starts, lengths = [], [], []
        for number, tokens in enumerate(self.shards):
            doc_starts = np.flatnonzero(tokens == self.bos_id)
            if doc_starts.size == 0 or doc_starts[0] != 0:
                raise DataError(f"Shard {self.shard_files[number]} does not start with BOS; rebuild with `dvc repro`.")
            shard_ids.append(np.full(doc_starts.size, number, dtype=np.int32))
            starts.append(doc_starts)
            lengths.append(np.diff(np.append(doc_starts, tokens.size)))
        doc_shard, doc_start, doc_len = np.concatenate(shard_ids), np.concatenate(starts), np.concatenate(lengths)
        row, body = self.row_len, self.row_len - 1
        # Piece 0 of a document is its first row_len tokens (BOS included); each later piece carries
        # body = row_len - 1 document tokens and gets a BOS written in front when it is packed.
        extra = np.where(doc_len > row, -(-(doc_len - row) // body), 0)
        count = 1 + extra
        first = np.repeat(np.cumsum(count) - count, count)
        k = np.arange(int(count.sum())) - first  # piece number within its document
        doc = np.repeat(np.arange(doc_len.size), count)
        offset = np.where(k == 0, 0, row + (k - 1) * body)
        data_len = np.where(k == 0, np.minimum(doc_len[doc], row), np.minimum(doc_len[doc] - offset, body))
        self.piece_shard = doc_shard[doc]
        self.piece_start = doc_start[doc] + offset
        self.piece_data_len = data_len
        self.piece_needs_bos = k > 0
        self.piece_len = data_len + self.piece_needs_bos  # tokens it occupies in a row
        self.documents = int(doc_len.size)

    def _next_piece(self) -> int:
        if self._cursor >= self._order.size:
            self.epoch += 1
            if self.epoch == WARN_AFTER_PASSES:
                print(f"warning: training starts pass {self.epoch + 1} over its training split ({self.train_tokens:,} "
                      f"tokens in {len(self.shards)} shards): beyond {WARN_AFTER_PASSES} passes it mostly memorises "
                      f"the split; use a bigger dataset (e.g. dataset=climbmix) or a smaller budget", flush=True)
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(self.piece_len.size)
            self._cursor = 0
        piece = int(self._order[self._cursor])
        self._cursor += 1
        return piece

    def _refill(self) -> None:
        lengths, pieces = self._buffer_lengths, self._buffer_pieces
        while len(lengths) < self.buffer_pieces:
            piece = self._next_piece()
            length = int(self.piece_len[piece])
            at = bisect_right(lengths, length)
            lengths.insert(at, length)
            pieces.insert(at, piece)
            if len(lengths) >= self.piece_len.size:  # tiny datasets: never buffer a piece twice at once
                break

    def _fill_row(self, row: np.ndarray) -> None:
        lengths, pieces = self._buffer_lengths, self._buffer_pieces
        position = 0
        while position < self.row_len:
            self._refill()
            room = self.row_len - position
            at = bisect_right(lengths, room) - 1
            if at < 0:
                at = 0  # nothing fits: crop the shortest piece, wasting the least
            length = lengths.pop(at)
            piece = pieces.pop(at)
            take = min(length, room)
            self.tokens_dropped += length - take
            tokens = self.shards[self.piece_shard[piece]]
            start = int(self.piece_start[piece])
            if self.piece_needs_bos[piece]:
                row[position] = self.bos_id
                row[position + 1:position + take] = tokens[start:start + take - 1]
            else:
                row[position:position + take] = tokens[start:start + take]
            position += take

    def __iter__(self) -> "TrainLoader":
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.empty((self.batch_size, self.row_len), dtype=np.int64)
        for row in rows:
            self._fill_row(row)
        self.tokens_yielded += rows.size
        return np.ascontiguousarray(rows[:, :-1]), np.ascontiguousarray(rows[:, 1:])


def validation_tokens(shard_dir: str | Path, split: str = "val") -> np.ndarray:
    """The validation split (or, for `autoresearch finalize` only, the held-out test split) as one token array
    (memory-mapped when it is a single shard)."""
    manifest = read_manifest(shard_dir)
    arrays = [open_shard(path, entry, manifest) for path, entry in shard_paths(shard_dir, split, manifest)]
    if not arrays:
        raise DataError(f"The manifest in {shard_dir} lists no {split} shards; rebuild with `dvc repro`"
                        + (" after setting test_fraction in the dataset's config." if split == "test" else "."))
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def validation_batches(shard_dir: str | Path, batch_size: int, seq_len: int, eval_tokens: int,
                       split: str = "val") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Deterministic, finite (inputs, targets) covering exactly eval_tokens target tokens of the validation split.

    Row i holds stream tokens [i*seq_len, i*seq_len + seq_len + 1): consecutive rows overlap by one
    token so every stream token after the first is a target exactly once. Batches have batch_size rows
    except the last, which may have fewer; in the very last row the target positions past eval_tokens
    are -1 (padding: ignore them, as data.metric.accumulate does) and their inputs are 0.
    If the split holds fewer than eval_tokens + 1 tokens the walk wraps around to its start,
    deterministically, so the score always covers the same eval_tokens targets; a warning with the numbers
    says so, since some tokens then count twice.
    """
    tokens = validation_tokens(shard_dir, split)
    total, row_len = tokens.size, seq_len + 1
    rows_needed = -(-int(eval_tokens) // seq_len)
    if total < int(eval_tokens) + 1:
        print(f"warning: the {split} split holds {total:,} tokens, fewer than the {int(eval_tokens):,} to score "
              f"(train.eval_tokens): the walk wraps around and scores {int(eval_tokens) - total + 1:,} of them "
              f"again; lower train.eval_tokens or use a bigger dataset", flush=True)
    for first_row in range(0, rows_needed, batch_size):
        count = min(batch_size, rows_needed - first_row)
        batch = np.empty((count, row_len), dtype=np.int64)
        for r in range(count):
            start = (first_row + r) * seq_len
            if start + row_len <= total:
                batch[r] = tokens[start:start + row_len]
            else:
                batch[r] = tokens[np.arange(start, start + row_len) % total]
        inputs, targets = batch[:, :-1].copy(), batch[:, 1:].copy()
        scored = int(eval_tokens) - first_row * seq_len  # targets still owed when this batch starts
        if scored < count * seq_len:
            flat_targets, flat_inputs = targets.reshape(-1), inputs.reshape(-1)
            flat_targets[scored:] = -1
            flat_inputs[scored:] = 0
        yield inputs, targets
