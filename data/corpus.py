"""The corpus stage: documents from a source -> corpus/{train,val[,test]}/*.parquet with one `text` column.

Every source ends in the same on-disk form, so the tokenizer and shard stages never care where text
came from. The train/val assignment happens here, once, and is then fixed by the files. With
`test_fraction` > 0 a held-out test split is carved from the training documents (by the same content hash):
no decision reads it, only `autoresearch finalize`. With 0 the corpus is byte for byte what it was before.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from common.atomic import atomic_write_json
from data.errors import DataError
from data.layout import corpus_dir
from data.shards import sha256_path
from data.sources import source_module
from data.spec import load_dataset_spec
from data.staging import building
from data.text import is_test, is_validation

FILE_CHARS = 256 * 1024 * 1024  # start a new parquet file after this much text: bounded memory per file
SPLITS = ("train", "val")  # always present
TEST_SPLIT = "test"        # present only when the dataset sets test_fraction > 0
ALL_SPLITS = (*SPLITS, TEST_SPLIT)


def present_splits(counts: dict) -> tuple[str, ...]:
    """The splits a corpus or manifest holds: train and val, and test when it has documents."""
    return tuple(split for split in ALL_SPLITS if split in SPLITS or counts.get(split))


class CorpusWriter:
    """Buffers documents per split and writes numbered parquet files (train_00000.parquet, ...)."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.pending = {split: [] for split in ALL_SPLITS}
        self.pending_chars = {split: 0 for split in ALL_SPLITS}
        self.files = {split: 0 for split in ALL_SPLITS}
        self.documents = {split: 0 for split in ALL_SPLITS}
        self.characters = {split: 0 for split in ALL_SPLITS}

    def add(self, text: str, split: str) -> None:
        self.pending[split].append(text)
        self.pending_chars[split] += len(text)
        self.documents[split] += 1
        self.characters[split] += len(text)
        if self.pending_chars[split] >= FILE_CHARS:
            self._flush(split)

    def close(self) -> None:
        for split in ALL_SPLITS:
            if self.pending[split]:
                self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.out_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({"text": pa.array(self.pending[split], type=pa.large_string())})
        pq.write_table(table, folder / f"{split}_{self.files[split]:05d}.parquet", row_group_size=8192)
        self.files[split] += 1
        self.pending[split], self.pending_chars[split] = [], 0


def build_corpus(name: str, root: str | Path = ".", base_url: str | None = None, spec: dict | None = None) -> dict:
    """Write datasets/NAME/corpus (replacing it only on success) and return its meta.json content."""
    spec = spec or load_dataset_spec(name, Path(root) / "conf")
    source = source_module(spec["source"])
    val_fraction = float(spec.get("val_fraction") or 0.0)
    test_fraction = float(spec.get("test_fraction") or 0.0)
    invalid_utf8 = 0
    with building(corpus_dir(name, root)) as out_dir:
        writer = CorpusWriter(out_dir)
        held_back = None  # the first document, kept aside so a split that would be empty can take it
        held_back_test = None  # the next one, for the test split (only with test_fraction > 0)
        for text, split, invalid in source.iter_documents(spec, root, base_url):
            invalid_utf8 += invalid
            if not text.strip():
                continue
            if split is None:
                split = "val" if is_validation(text, val_fraction) else "train"
            if split == "train" and test_fraction > 0 and is_test(text, val_fraction, test_fraction):
                split = TEST_SPLIT
            if held_back is None and split == "train" and writer.documents["val"] == 0 and val_fraction > 0:
                held_back = text
                continue
            if held_back_test is None and split == "train" and writer.documents[TEST_SPLIT] == 0 and test_fraction > 0:
                held_back_test = text
                continue
            writer.add(text, split)
        if held_back is not None:
            # Tiny corpora: guarantee a validation document exists rather than failing later.
            writer.add(held_back, "val" if writer.documents["val"] == 0 else "train")
        if held_back_test is not None:  # the same for the test split
            writer.add(held_back_test, TEST_SPLIT if writer.documents[TEST_SPLIT] == 0 else "train")
        writer.close()
        for split in SPLITS + ((TEST_SPLIT,) if test_fraction > 0 else ()):
            if writer.documents[split] == 0:
                raise DataError(
                    f"Dataset '{name}' produced no {split} documents; add more text or change val_fraction "
                    f"(or test_fraction) in conf/dataset/{name}.yaml.")
        splits = present_splits(writer.documents)  # without a test split, meta.json is what it always was
        meta = {
            "dataset": name,
            # What the corpus was made from, byte for byte (downloads included): part of the data version.
            "source_files": [{"file": label, "sha256": sha256_path(path), "bytes": path.stat().st_size}
                             for label, path in source.input_files(spec, root)],
            "source": spec["source"],
            "documents": {split: writer.documents[split] for split in splits},
            "characters": {split: writer.characters[split] for split in splits},
            "files": {split: writer.files[split] for split in splits},
            "invalid_utf8_sequences": invalid_utf8,
            # No timings here: identical input must give a byte-identical corpus, so DVC can see that
            # a re-scanned local folder did not change and skip the tokenizer and shard stages.
        }
        atomic_write_json(out_dir / "meta.json", meta)
    return meta


def iter_corpus_texts(corpus: str | Path, split: str, batch_rows: int = 1024) -> Iterator[list[str]]:
    """Batches of document texts of one split, in file order (deterministic)."""
    import pyarrow.parquet as pq

    for path in sorted((Path(corpus) / split).glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["text"]):
            yield batch.column(0).to_pylist()
