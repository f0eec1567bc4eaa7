"""A small fake of the Anthropic Messages API on 127.0.0.1, for tests that go through the real SDK via base_url.

Each request to POST /v1/messages takes the next scripted Reply (FIFO); when the script is empty the `default`
reply is used (a 500 unless set). Every request is recorded (path, lower-cased headers, JSON body) so tests can
check what the client sent: the system block's cache_control, the tool_result of a re-ask, and so on.

    with FakeAnthropic([rate_limited(retry_after=0.01), tool_answer({...})]) as fake:
        client = anthropic.Anthropic(api_key="test", base_url=fake.base_url, max_retries=2)
        ...
        assert len(fake.requests) == 2

Builders: tool_answer, tool_answers (several tool calls), text_answer (no tool call), refusal, max_tokens_stop,
raw (any status/body/headers), api_error, rate_limited (429 + retry-after), server_error (500),
overloaded (529), unauthorized (401), forbidden (403), billing_error (400 credit balance), slow (delays any reply),
connection_reset (closes the socket with a TCP RST, no response).
"""
from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

DEFAULT_USAGE = {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}


@dataclass
class Reply:
    """One scripted answer. `body` is a dict (sent as JSON), str/bytes (sent raw) or a callable(request) -> dict.
    `action` is "respond" or "reset" (close the connection with RST, no response)."""

    status: int = 200
    body: Any = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    action: str = "respond"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict
    body: Any


_ids = itertools.count(1)


def _message(content: list, *, stop_reason: str = "tool_use", usage: dict | None = None,
             model: str | None = None) -> Any:
    def build(request: RecordedRequest) -> dict:
        requested = request.body.get("model") if isinstance(request.body, dict) else None
        return {
            "id": f"msg_fake_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": model or requested or "claude-fake",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {**DEFAULT_USAGE, **(usage or {})},
        }

    return build


def _tool_block(tool_input: Any, name: str = "propose_change") -> dict:
    return {"type": "tool_use", "id": f"toolu_fake_{next(_ids)}", "name": name, "input": tool_input}


def tool_answer(tool_input: Any, *, usage: dict | None = None, name: str = "propose_change",
                stop_reason: str = "tool_use", text: str | None = None) -> Reply:
    """A message with one tool call (the normal answer under a forced tool_choice)."""
    content = ([{"type": "text", "text": text}] if text else []) + [_tool_block(tool_input, name)]
    return Reply(body=_message(content, stop_reason=stop_reason, usage=usage))


def tool_answers(inputs: Iterable[Any], *, usage: dict | None = None, name: str = "propose_change") -> Reply:
    """A message with several tool calls (e.g. two changes at once)."""
    return Reply(body=_message([_tool_block(i, name) for i in inputs], usage=usage))


def text_answer(text: str = "I think you should raise the learning rate.", *, usage: dict | None = None,
                stop_reason: str = "end_turn") -> Reply:
    """A message without a tool call."""
    return Reply(body=_message([{"type": "text", "text": text}], stop_reason=stop_reason, usage=usage))


def refusal(*, usage: dict | None = None) -> Reply:
    return Reply(body=_message([], stop_reason="refusal", usage=usage))


def max_tokens_stop(tool_input: Any = None, *, usage: dict | None = None) -> Reply:
    """A message cut off by max_tokens (with a partial tool call when tool_input is given)."""
    content = [_tool_block(tool_input)] if tool_input is not None else [{"type": "text", "text": "Let me think"}]
    return Reply(body=_message(content, stop_reason="max_tokens", usage=usage))


def raw(status: int = 200, body: Any = "", headers: dict | None = None, delay: float = 0.0) -> Reply:
    return Reply(status=status, body=body, headers=dict(headers or {}), delay=delay)


def api_error(status: int, error_type: str, message: str, headers: dict | None = None) -> Reply:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return Reply(status=status, body=body, headers=dict(headers or {}))


def rate_limited(retry_after: float = 0.01, message: str = "Number of request tokens has exceeded your rate limit.") -> Reply:
    return api_error(429, "rate_limit_error", message, {"retry-after": f"{retry_after:g}"})


def _retry_headers(retry_after: float | None) -> dict:
    return {} if retry_after is None else {"retry-after": f"{retry_after:g}"}


def server_error(message: str = "Internal server error", retry_after: float | None = None) -> Reply:
    """500; `retry_after` (seconds) shortens the SDK's backoff in tests."""
    return api_error(500, "api_error", message, _retry_headers(retry_after))


def overloaded(message: str = "Overloaded", retry_after: float | None = None) -> Reply:
    return api_error(529, "overloaded_error", message, _retry_headers(retry_after))


def unauthorized(message: str = "invalid x-api-key") -> Reply:
    return api_error(401, "authentication_error", message)


def forbidden(message: str = "Your API key does not have permission to use the specified resource.") -> Reply:
    return api_error(403, "permission_error", message)


def billing_error(status: int = 400) -> Reply:
    return api_error(status, "invalid_request_error",
                     "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
                     "to upgrade or purchase credits.")


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    """`reply` (a 200 tool answer if None) sent only after `seconds`: longer than the client timeout, it times out."""
    reply = reply or tool_answer({"key": "optim.matrix_lr", "value": 0.05, "description": "slow",
                                  "reasoning": "slow"})
    return Reply(status=reply.status, body=reply.body, headers=reply.headers, delay=seconds, action=reply.action)


def connection_reset() -> Reply:
    return Reply(action="reset")


class FakeAnthropic:
    """The fake server. Start with `start()` or a `with` block; `base_url` is http://127.0.0.1:<free port>."""

    def __init__(self, replies: Iterable[Reply] = (), default: Reply | None = None) -> None:
        self._script: list[Reply] = list(replies)
        self.default = default or api_error(500, "api_error", "The fake server has no scripted reply left.")
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- script
    def push(self, *replies: Reply) -> "FakeAnthropic":
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else self.default

    def message_requests(self) -> list[dict]:
        """The JSON bodies of the POST /v1/messages requests, in order."""
        return [r.body for r in self.requests if r.path.startswith("/v1/messages")]

    # -- lifecycle
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeAnthropic":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                self._handle()

            def do_GET(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(data) if data else None
                except ValueError:
                    body = data.decode("utf-8", "replace")
                request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                reply = fake._next(request)
                if reply.delay and fake._stopping.wait(reply.delay):
                    self.close_connection = True
                    return
                if reply.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = reply.body(request) if callable(reply.body) else reply.body
                if isinstance(payload, (dict, list)):
                    out = json.dumps(payload).encode()
                    content_type = "application/json"
                elif isinstance(payload, bytes):
                    out, content_type = payload, "application/octet-stream"
                else:
                    out, content_type = str(payload or "").encode(), "text/plain"
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(out)))
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(out)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
