"""The Hugging Face source against a local HTTP server serving real parquet files: retries, resume, build."""
from __future__ import annotations

import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.corpus import build_corpus
from data.download import download_file, hf_endpoint, hf_file_url
from data.errors import DataError
from data.sources.huggingface import fetch, shard_files

REPO = "someone/tiny-parquet"


def _parquet(texts: list[str]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}), sink)
    return sink.getvalue()


class FakeHub:
    """A local stand-in for the Hub: serves files at /datasets/REPO/resolve/REV/FILE with HTTP Range.

    fail_first[path] = n answers the first n requests with 503; cut_first[path] = n sends only half of
    the body (with the full Content-Length) the first n times, as a dropped connection does.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail_first: dict[str, int] = {}
        self.cut_first: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.requests.append((self.path, self.headers.get("Range")))
                body = hub.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if hub.fail_first.get(self.path, 0) > 0:
                    hub.fail_first[self.path] -= 1
                    self.send_error(503)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if hub.cut_first.get(self.path, 0) > 0:
                    hub.cut_first[self.path] -= 1
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free port
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, filename: str, payload: bytes, revision: str = "main") -> str:
        path = hf_file_url(REPO, filename, revision, self.base_url).removeprefix(self.base_url)
        self.files[path] = payload
        return path


@pytest.fixture()
def hub():
    fake = FakeHub()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _spec(**overrides):
    spec = {"name": "hubtest", "source": "huggingface", "repo": REPO, "revision": "main",
            "train_files": "shard_{index:05d}.parquet", "num_train_shards": 2, "val_file": "shard_00009.parquet",
            "text_column": "text", "vocab_size": 300}
    spec.update(overrides)
    return spec


def test_url_pattern_and_endpoint_override(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hf_file_url("a/b", "x/y.parquet") == "https://huggingface.co/datasets/a/b/resolve/main/x/y.parquet"
    assert hf_file_url("a/b", "f.parquet", "refs/convert/parquet").endswith("/resolve/refs%2Fconvert%2Fparquet/f.parquet")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example/")
    assert hf_endpoint() == "http://mirror.example"
    assert hf_endpoint("http://given") == "http://given"


def test_shard_list_keeps_the_pinned_validation_shard_out_of_training():
    files = shard_files(_spec(num_train_shards=12, val_file="shard_00010.parquet"))
    assert ("shard_00010.parquet", "val") in files
    assert [f for f, split in files if split == "train"] == [f"shard_{i:05d}.parquet" for i in range(12) if i != 10]


def test_retry_after_server_errors(hub, tmp_path):
    payload = _parquet(["retry me"] * 50)
    path = hub.add("shard_00000.parquet", payload)
    hub.fail_first[path] = 2
    dest = download_file(hub.base_url + path, tmp_path / "f.parquet", retries=3, backoff_seconds=0.01)
    assert dest.read_bytes() == payload
    assert len(hub.requests) == 3


def test_resume_after_a_dropped_connection(hub, tmp_path):
    payload = _parquet([f"document number {i} " * 20 for i in range(400)])
    path = hub.add("shard_00000.parquet", payload)
    hub.cut_first[path] = 1
    dest = download_file(hub.base_url + path, tmp_path / "f.parquet", retries=2, backoff_seconds=0.01)
    assert dest.read_bytes() == payload
    # The second request asks only for what the first one did not deliver.
    assert hub.requests[0][1] is None and hub.requests[1][1] == f"bytes={len(payload) // 2}-"
    assert not (tmp_path / "f.parquet.part").exists()


def test_resume_of_a_partial_file_left_by_an_earlier_run(hub, tmp_path):
    payload = _parquet([f"row {i}" for i in range(1000)])
    path = hub.add("shard_00000.parquet", payload)
    (tmp_path / "f.parquet.part").write_bytes(payload[:1000])
    dest = download_file(hub.base_url + path, tmp_path / "f.parquet", retries=0)
    assert dest.read_bytes() == payload
    assert hub.requests == [(path, "bytes=1000-")]


def test_complete_file_is_not_downloaded_again(hub, tmp_path):
    (tmp_path / "f.parquet").write_bytes(b"already here")
    download_file(hub.base_url + "/nothing", tmp_path / "f.parquet")
    assert hub.requests == []


def test_missing_file_is_a_clear_error(hub, tmp_path):
    with pytest.raises(DataError, match="HTTP 404.*conf/dataset"):
        download_file(hub.base_url + "/datasets/x/resolve/main/nope.parquet", tmp_path / "n.parquet", retries=0)


def test_no_network_names_the_offline_datasets(tmp_path):
    import socket

    with socket.socket() as probe:  # a port with nobody listening: connection refused, like no network
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError) as error:
        fetch(_spec(), tmp_path, base_url=f"http://127.0.0.1:{port}", retries=1, backoff_seconds=0.01)
    assert "dataset=bundled" in str(error.value) and "dataset=local" in str(error.value)
    assert not list(tmp_path.rglob("*.parquet"))


def test_build_corpus_from_the_hub(hub, tmp_path):
    train0 = [f"training document {i} about cats" for i in range(30)]
    train1 = [f"training document {i} about dogs" for i in range(30)]
    val = [f"validation document {i} about birds" for i in range(10)]
    hub.add("shard_00000.parquet", _parquet(train0))
    hub.add("shard_00001.parquet", _parquet(train1))
    hub.add("shard_00009.parquet", _parquet(val))
    meta = build_corpus("hubtest", tmp_path, base_url=hub.base_url, spec=_spec())
    assert meta["documents"] == {"train": 60, "val": 10}
    corpus = tmp_path / "datasets" / "hubtest" / "corpus"
    assert pq.read_table(corpus / "val" / "val_00000.parquet")["text"].to_pylist() == val
    assert pq.read_table(corpus / "train" / "train_00000.parquet")["text"].to_pylist() == train0 + train1
    recorded = json.loads((corpus / "meta.json").read_text())
    assert recorded["invalid_utf8_sequences"] == 0
    # Every downloaded file is recorded with its sha256 (it flows into the shard manifest and data version).
    assert {entry["file"]: entry["sha256"] for entry in recorded["source_files"]} == {
        name: hashlib.sha256(payload).hexdigest() for name, payload in
        (("shard_00000.parquet", _parquet(train0)), ("shard_00001.parquet", _parquet(train1)), ("shard_00009.parquet", _parquet(val)))
    }
    # A second build finds the downloads complete and fetches nothing.
    before = len(hub.requests)
    build_corpus("hubtest", tmp_path, base_url=hub.base_url, spec=_spec())
    assert len(hub.requests) == before
