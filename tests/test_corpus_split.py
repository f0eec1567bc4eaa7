"""build_corpus's split of documents, worked by hand, and the corpus files CorpusWriter leaves.

The documents are "document N", whose place in [0, 1) (data/text.py's content hash) is written down below, so each
test says which split each document must land in. The source is a listed one: it yields the documents given, in
order, with the split the test gives (None: "decide by val_fraction", as the local and bundled sources do).
"""
from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import data.corpus as corpus
from data.corpus import CorpusWriter, build_corpus, iter_corpus_texts
from data.errors import DataError
from data.text import _hash_unit

# A document's place in [0, 1): with val_fraction 0.2 and test_fraction 0.3, val is [0, 0.2), test [0.2, 0.5).
PLACES = {"document 17": 0.016846120137007047, "document 0": 0.10326981164875758, "document 3": 0.12538310338300573,
          "document 4": 0.289106830220009, "document 2": 0.3452515833514743, "document 1": 0.5707107497123741,
          "document 7": 0.5828464263700721, "document 8": 0.7819552717033086, "document 9": 0.8804987967450646}
SPEC = {"name": "mine", "source": "listed", "vocab_size": 300, "val_fraction": 0.2}


def test_the_documents_places_are_what_these_tests_assume():
    assert {text: _hash_unit(text) for text in PLACES} == PLACES


@pytest.fixture
def listed(monkeypatch, tmp_path):
    """use(documents, files): the "listed" source kind yields `documents` ((text, split) or (text, split, invalid))."""
    asked = []

    def use(documents, files=()):
        def iter_documents(spec, root, base_url):
            asked.append(base_url)
            for document in documents:
                text, split, invalid = (*document, 0) if len(document) == 2 else document
                yield text, split, invalid

        source = SimpleNamespace(iter_documents=iter_documents, input_files=lambda spec, root: list(files))
        monkeypatch.setattr(corpus, "source_module", lambda kind: source if kind == "listed" else None)
        return asked

    return use


def _split(root, split):
    """The texts of one split, in file order."""
    return [text for batch in iter_corpus_texts(root / "datasets" / "mine" / "corpus", split) for text in batch]


def _splits(root):
    return {split: _split(root, split) for split in ("train", "val", "test")}


def test_each_document_goes_where_its_hash_falls_and_blank_ones_are_skipped_not_the_end(tmp_path, listed):
    (tmp_path / "a.jsonl").write_bytes(b"one source file\n")
    listed([("document 0", None, 2), ("document 2", None), ("  \n\t", None), ("document 1", None, 3), ("", None),
            ("document 3", None), ("document 4", None), ("document 17", None), ("document 7", None)],
           files=[("a.jsonl", tmp_path / "a.jsonl")])
    meta = build_corpus("mine", tmp_path, spec={**SPEC, "test_fraction": 0.3})
    assert _splits(tmp_path) == {"train": ["document 1", "document 7"],
                                 "val": ["document 0", "document 3", "document 17"],
                                 "test": ["document 2", "document 4"]}
    assert meta == {
        "dataset": "mine",
        "source_files": [{"file": "a.jsonl", "sha256": hashlib.sha256(b"one source file\n").hexdigest(), "bytes": 16}],
        "source": "listed",
        "documents": {"train": 2, "val": 3, "test": 2},
        "characters": {"train": 20, "val": 31, "test": 20},
        "files": {"train": 1, "val": 1, "test": 1},
        "invalid_utf8_sequences": 5,
    }


def test_without_a_test_fraction_there_is_no_test_split_and_meta_is_as_before(tmp_path, listed):
    listed([("document 0", None), ("document 2", None), ("document 1", None)])
    meta = build_corpus("mine", tmp_path, spec=SPEC)
    assert _splits(tmp_path) == {"train": ["document 2", "document 1"], "val": ["document 0"], "test": []}
    assert set(meta["documents"]) == set(meta["characters"]) == set(meta["files"]) == {"train", "val"}
    assert not (tmp_path / "datasets" / "mine" / "corpus" / "test").exists()


@pytest.mark.parametrize("val_fraction, split", [(0.10326981164875758, "test"),  # exactly on the edge: above it
                                                 (math.nextafter(0.10326981164875758, 1.0), "val")])
def test_a_document_exactly_on_validations_edge_is_not_validation(tmp_path, listed, val_fraction, split):
    listed([("document 17", None), ("document 0", None), ("document 1", None), ("document 7", None)])
    build_corpus("mine", tmp_path, spec={**SPEC, "val_fraction": val_fraction, "test_fraction": 0.01})
    assert "document 0" in _split(tmp_path, split)


@pytest.mark.parametrize("hair, split", [(0.0, "train"), (1e-12, "test")])
def test_a_document_exactly_on_the_test_splits_upper_edge_stays_in_training(tmp_path, listed, hair, split):
    val_fraction = PLACES["document 0"]
    test_fraction = PLACES["document 3"] - val_fraction + hair
    assert (val_fraction + test_fraction == PLACES["document 3"]) == (hair == 0.0)
    listed([("document 17", None), ("document 0", None), ("document 3", None), ("document 1", None)])
    build_corpus("mine", tmp_path, spec={**SPEC, "val_fraction": val_fraction, "test_fraction": test_fraction})
    assert "document 3" in _split(tmp_path, split)


def test_the_sources_own_split_stands_and_only_its_training_documents_can_become_test(tmp_path, listed):
    # document 2 falls in the test range but the source says val; document 0 falls in val's but the source says train.
    listed([("document 2", "val"), ("document 4", "train"), ("document 0", "train"), ("document 1", "train")])
    build_corpus("mine", tmp_path, spec={**SPEC, "test_fraction": 0.3})
    assert _splits(tmp_path) == {"train": ["document 0", "document 1"], "val": ["document 2"], "test": ["document 4"]}


def test_with_val_fraction_0_the_sources_splits_are_written_in_order_and_nothing_is_held_back(tmp_path, listed):
    listed([("document 1", "train"), ("document 0", "val"), ("document 7", "train")])
    build_corpus("mine", tmp_path, spec={**SPEC, "val_fraction": 0})
    assert _splits(tmp_path) == {"train": ["document 1", "document 7"], "val": ["document 0"], "test": []}


def test_without_val_fraction_no_document_is_drawn_into_validation(tmp_path, listed):
    listed([("document 0", None), ("document 1", None), ("document 7", None)])
    spec = {key: value for key, value in SPEC.items() if key != "val_fraction"}
    with pytest.raises(DataError, match=r"^Dataset 'mine' produced no val documents; .* in conf/dataset/mine\.yaml\.$"):
        build_corpus("mine", tmp_path, spec=spec)


def test_when_no_hash_falls_in_validation_the_first_training_document_is_its_only_one(tmp_path, listed):
    listed([("document 1", None), ("document 7", None), ("document 8", None)])
    meta = build_corpus("mine", tmp_path, spec=SPEC)
    assert _splits(tmp_path) == {"train": ["document 7", "document 8"], "val": ["document 1"], "test": []}
    assert meta["documents"] == {"train": 2, "val": 1}


def test_when_no_hash_falls_in_either_the_first_goes_to_validation_and_the_next_to_test(tmp_path, listed):
    listed([("document 1", None), ("document 7", None), ("document 8", None), ("document 9", None)])
    build_corpus("mine", tmp_path, spec={**SPEC, "test_fraction": 0.3})
    assert _splits(tmp_path) == {"train": ["document 8", "document 9"], "val": ["document 1"], "test": ["document 7"]}


def test_a_held_back_document_goes_back_to_training_when_validation_gets_one_of_its_own(tmp_path, listed):
    listed([("document 1", None), ("document 0", None), ("document 7", None)])
    build_corpus("mine", tmp_path, spec=SPEC)
    assert _splits(tmp_path) == {"train": ["document 7", "document 1"], "val": ["document 0"], "test": []}


def test_a_held_back_document_goes_back_to_training_when_test_gets_one_of_its_own(tmp_path, listed):
    listed([("document 0", None), ("document 1", None), ("document 2", None), ("document 7", None)])
    build_corpus("mine", tmp_path, spec={**SPEC, "test_fraction": 0.3})
    assert _splits(tmp_path) == {"train": ["document 7", "document 1"], "val": ["document 0"], "test": ["document 2"]}


def test_a_test_fraction_that_leaves_the_test_split_empty_is_an_error_not_a_corpus_without_one(tmp_path, listed):
    # document 1 is held back for validation (none yet), then document 0 falls in it: nothing is left for test.
    listed([("document 1", None), ("document 0", None)])
    with pytest.raises(DataError, match=r"^Dataset 'mine' produced no test documents; .*test_fraction.* "
                                        r"in conf/dataset/mine\.yaml\.$"):
        build_corpus("mine", tmp_path, spec={**SPEC, "test_fraction": 0.3})
    assert not (tmp_path / "datasets" / "mine" / "corpus").exists()


def test_the_base_url_is_handed_to_the_source(tmp_path, listed):
    asked = listed([("document 0", None), ("document 1", None)])
    build_corpus("mine", tmp_path, base_url="http://mirror.example/", spec=SPEC)
    assert asked == ["http://mirror.example/"]


def _conf_and_jsonl(root):
    (root / "conf" / "dataset").mkdir(parents=True)
    (root / "conf" / "dataset" / "mine.yaml").write_text(
        "name: mine\nsource: local\npath: my_corpus\nvocab_size: 300\nval_fraction: 0.2\n", encoding="utf-8")
    (root / "my_corpus").mkdir()
    (root / "my_corpus" / "docs.jsonl").write_text(
        '{"text": "document 0"}\n{"text": "document 1"}\n{"text": "document 7"}\n', encoding="utf-8")


def test_without_a_spec_the_dataset_yaml_is_read_from_the_roots_conf(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTORESEARCH_LOCAL_DIR", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    _conf_and_jsonl(root)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    meta = build_corpus("mine", root)
    assert meta["source"] == "local" and _splits(root)["val"] == ["document 0"]


def test_the_root_is_the_current_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTORESEARCH_LOCAL_DIR", raising=False)
    _conf_and_jsonl(tmp_path)
    monkeypatch.chdir(tmp_path)
    build_corpus("mine")
    assert _splits(tmp_path) == {"train": ["document 1", "document 7"], "val": ["document 0"], "test": []}


def _files(folder):
    return {path.name: pq.read_table(path).column("text").to_pylist() for path in sorted(folder.glob("*.parquet"))}


def test_a_file_is_cut_when_its_text_reaches_file_chars_exactly_and_counting_starts_again(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "FILE_CHARS", 10)
    writer = CorpusWriter(tmp_path)
    writer.add("a" * 9, "train")
    assert not (tmp_path / "train").exists()  # 9 characters: under the cut
    writer.add("b", "train")  # 10: exactly the cut
    writer.add("c" * 9, "train")  # 9 since the cut
    assert _files(tmp_path / "train") == {"train_00000.parquet": ["a" * 9, "b"]}
    writer.add("d" * 10, "train")
    writer.add("e", "train")
    writer.add("f", "val")
    writer.close()
    assert _files(tmp_path / "train") == {"train_00000.parquet": ["a" * 9, "b"],
                                          "train_00001.parquet": ["c" * 9, "d" * 10],
                                          "train_00002.parquet": ["e"]}
    assert _files(tmp_path / "val") == {"val_00000.parquet": ["f"]}
    assert writer.files == {"train": 3, "val": 1, "test": 0}
    assert writer.documents == {"train": 5, "val": 1, "test": 0}
    assert writer.characters == {"train": 30, "val": 1, "test": 0}


def test_a_corpus_file_holds_large_strings_in_row_groups_of_8192_documents(tmp_path):
    writer = CorpusWriter(tmp_path)
    for number in range(8193):
        writer.add(str(number), "train")
    writer.close()
    parquet = pq.ParquetFile(tmp_path / "train" / "train_00000.parquet")
    assert parquet.schema_arrow.field("text").type == pa.large_string()
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)] == [8192, 1]


def test_texts_are_read_back_in_batches_of_1024_in_file_order(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "FILE_CHARS", 1025 * 4)
    writer = CorpusWriter(tmp_path)
    texts = [f"{number:04d}" for number in range(1030)]  # 4 characters each: the first file holds 1025
    for text in texts:
        writer.add(text, "val")
    writer.close()
    batches = list(iter_corpus_texts(tmp_path, "val"))
    assert [len(batch) for batch in batches] == [1024, 1, 5]
    assert [text for batch in batches for text in batch] == texts
