"""HTTP download of Hugging Face dataset files: retries with exponential backoff, resume, atomic rename.

The host is a parameter (default https://huggingface.co, HF_ENDPOINT overrides, as huggingface_hub does),
so tests serve real parquet files from a local http.server and exercise this exact code.
Plain urllib: one less dependency, and the Hub's `resolve` URLs are ordinary HTTP with redirects.
"""
from __future__ import annotations

import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

from data.errors import DataError

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK_BYTES = 1 << 20
OFFLINE_HINT = "with no network use dataset=bundled or dataset=local"


def offline_error(url: str, reason: object) -> DataError:
    """The sentence for a host that cannot be resolved: the machine is offline (or the host is mistyped), and
    retrying with backoff would only add minutes before saying so."""
    host = urlsplit(url).hostname or url
    return DataError(f"Could not resolve {host} to download {url} ({reason}); {OFFLINE_HINT}, "
                     "or check HF_ENDPOINT.")


def require_resolvable(url: str) -> None:
    """Raise offline_error at once when the URL's host does not resolve (a DNS lookup, no download)."""
    try:
        socket.getaddrinfo(urlsplit(url).hostname, None)
    except socket.gaierror as error:
        raise offline_error(url, error.strerror or error) from None


class _Retryable(Exception):
    """A failure worth another attempt (connection, timeout, 5xx, 429, a body cut short)."""


def hf_endpoint(base_url: str | None = None) -> str:
    return (base_url or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hf_file_url(repo: str, filename: str, revision: str = "main", base_url: str | None = None) -> str:
    # The revision may be a branch such as refs/convert/parquet: its slashes must be escaped.
    return f"{hf_endpoint(base_url)}/datasets/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def download_file(
    url: str,
    dest: str | Path,
    retries: int = 5,
    backoff_seconds: float = 1.0,
    timeout_seconds: float = 60.0,
) -> Path:
    """Download url to dest unless dest already exists; return dest.

    Bytes go to dest + '.part' first and the file is renamed into place only when complete, so dest
    existing means dest is whole. A '.part' left by an earlier failure is resumed with an HTTP Range
    request. Failures are retried `retries` times, waiting backoff_seconds * 2**attempt in between.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    last_error = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
        try:
            _fetch_into(url, partial, timeout_seconds)
            os.replace(partial, dest)
            return dest
        except _Retryable as error:
            last_error = str(error)
            print(f"download {url}: {last_error} (attempt {attempt + 1} of {retries + 1})", file=sys.stderr, flush=True)
    raise DataError(f"Could not download {url} after {retries + 1} attempts ({last_error}); {OFFLINE_HINT}.")


def _fetch_into(url: str, partial: Path, timeout_seconds: float) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "autoresearch-data/0.1"})
    token = os.environ.get("HF_TOKEN")
    if token:  # gated datasets; the token is sent, never printed
        request.add_header("Authorization", f"Bearer {token}")
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            # Our partial file is at least as long as the remote one: it was complete but not renamed.
            total = (error.headers.get("Content-Range") or "").rpartition("/")[2]
            if total.isdigit() and int(total) == have:
                return
            partial.unlink()  # longer than the remote file: start over
            raise _Retryable("partial file does not match the remote file, restarting") from None
        if error.code == 429 or error.code >= 500:
            raise _Retryable(f"HTTP {error.code}") from None
        raise DataError(f"Downloading {url} failed with HTTP {error.code}; check the dataset's repo and file names in conf/dataset/.") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, socket.gaierror):  # no DNS answer: offline, not a passing failure
            raise offline_error(url, error.reason.strerror or error.reason) from None
        raise _Retryable(str(error.reason)) from None
    except (socket.timeout, ConnectionError, http.client.HTTPException) as error:
        raise _Retryable(str(getattr(error, "reason", error))) from None

    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range header and sends the whole file
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        received = have
        try:
            with open(partial, "ab" if have else "wb") as handle:
                while chunk := response.read(CHUNK_BYTES):
                    handle.write(chunk)
                    received += len(chunk)
        except (socket.timeout, ConnectionError, http.client.HTTPException) as error:
            raise _Retryable(f"connection lost after {received} bytes ({error})") from None
    if expected is not None and received != expected:
        raise _Retryable(f"got {received} of {expected} bytes")
