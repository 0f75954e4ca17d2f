"""A small OpenAI-compatible HTTP server for tests and offline development (`python -m yummi_ai.fake_openai`).

It speaks the real wire protocol the official SDK uses: `POST /v1/chat/completions` (JSON, or Server-Sent
Events `data: {...}` chunks ending in `data: [DONE]` with a usage chunk), tool calls, `GET /v1/models`, and
errors in OpenAI's shape. Tests script the next replies (429 with `retry-after`, 500, slow answers, tool
calls); with no script it answers by itself: an echo, or a `search_catalog` call followed by a JSON basket
answer that picks the first product it was shown.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import orjson

MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-4.1")


@dataclass
class Reply:
    """One scripted answer to the next chat request."""

    status: int = 200
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    delay: float = 0.0  # seconds before the answer starts
    piece_delay: float = 0.0  # seconds between streamed pieces
    pieces: list[str] | None = None  # how a streamed answer is split
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cut_after: int | None = None  # a stream that stops after this many pieces, without [DONE]

    @classmethod
    def text(cls, content: str, **kwargs: Any) -> Reply:
        return cls(content=content, **kwargs)

    @classmethod
    def tool_call(
        cls, name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None, **kwargs: Any
    ) -> Reply:
        args = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        call = {
            "id": call_id or f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": name, "arguments": args},
        }
        return cls(tool_calls=[call], **kwargs)

    @classmethod
    def failure(cls, status: int, message: str = "", *, code: str | None = None, **kwargs: Any) -> Reply:
        error = {
            "message": message or f"fake failure {status}",
            "type": "server_error" if status >= 500 else "requests",
            "param": None,
            "code": code,
        }
        return cls(status=status, error=error, **kwargs)


@dataclass
class Seen:
    """A request as the fake received it."""

    method: str
    path: str
    api_key: str | None
    body: dict[str, Any]


class FakeOpenAI:
    """The server, its script and what it has seen; `base_url` is what `OPENAI_BASE_URL` should be."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.accepted_keys: set[str] | None = None  # None: any key is accepted
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{cast(str, host)}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Answer the next chat requests with these, in order (then automatically again)."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.accepted_keys = None

    def chat_requests(self) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _record(self, seen: Seen) -> Reply | None:
        with self._lock:
            self.requests.append(seen)
            if seen.path.endswith("/chat/completions") and self._script:
                return self._script.popleft()
            return None

    def _key_ok(self, key: str | None) -> bool:
        with self._lock:
            return key is not None and (self.accepted_keys is None or key in self.accepted_keys)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests` instead
        return

    def _api_key(self) -> str | None:
        header = self.headers.get("Authorization", "")
        return header[7:] if header.lower().startswith("bearer ") else None

    def do_GET(self) -> None:
        key = self._api_key()
        self.owner._record(Seen("GET", self.path, key, {}))
        if not self.path.rstrip("/").endswith("/models"):
            return self._json(404, _error("no such route", "invalid_request_error", None))
        if not self.owner._key_ok(key):
            return self._json(401, _bad_key(key))
        self._json(
            200,
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "openai"} for m in MODELS],
            },
        )

    def do_POST(self) -> None:
        key = self._api_key()
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = orjson.loads(self.rfile.read(length) or b"{}")
        except orjson.JSONDecodeError:
            return self._json(400, _error("body is not JSON", "invalid_request_error", None))
        reply = self.owner._record(Seen("POST", self.path, key, body))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, _error("no such route", "invalid_request_error", None))
        if not self.owner._key_ok(key):
            return self._json(401, _bad_key(key))
        reply = reply or _automatic(body)
        if reply.delay:
            time.sleep(reply.delay)
        try:
            if reply.status != 200:
                return self._json(reply.status, {"error": reply.error or {}}, reply.headers)
            if body.get("stream"):
                return self._stream(body, reply)
            self._json(200, _completion(body, reply), reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (its timeout): nothing to answer

    def _json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        data = orjson.dumps(document)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        cid, model, created = (
            f"chatcmpl-{uuid.uuid4().hex[:16]}",
            body.get("model", "gpt-4o-mini"),
            int(time.time()),
        )
        content = reply.content or ""
        pieces = reply.pieces if reply.pieces is not None else _split(content)

        def send(chunk: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            self.wfile.flush()

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }

        for index, piece in enumerate(pieces):
            if reply.cut_after is not None and index >= reply.cut_after:
                return
            if index and reply.piece_delay:
                time.sleep(reply.piece_delay)
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            send(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
        send(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            send(chunk([], usage=_usage(body, "".join(pieces), reply)))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _bad_key(key: str | None) -> dict[str, Any]:
    shown = f"{(key or '')[:3]}***{(key or '')[-4:]}"
    return _error(f"Incorrect API key provided: {shown}.", "invalid_request_error", "invalid_api_key")


def _split(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)] if text else []


def _prompt_tokens(body: dict[str, Any]) -> int:
    return max(1, math.ceil(len(orjson.dumps(body.get("messages", []))) / 5))


def _usage(body: dict[str, Any], output: str, reply: Reply) -> dict[str, int]:
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _prompt_tokens(body)
    completion = (
        reply.completion_tokens if reply.completion_tokens is not None else max(1, math.ceil(len(output) / 4))
    )
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and reply.completion_tokens is None:
        completion = min(completion, int(limit))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    output = reply.content or orjson.dumps(reply.tool_calls or []).decode()
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(body, output, reply),
    }


def _automatic(body: dict[str, Any]) -> Reply:
    """An answer without a script: search once when offered the catalog tool, then pick what it found."""
    messages = body.get("messages") or []
    offered = any((t.get("function") or {}).get("name") == "search_catalog" for t in body.get("tools") or [])
    results = [m for m in messages if m.get("role") == "tool"]
    if offered and not results and body.get("tool_choice") != "none":
        users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
        words = [
            w for w in (users[-1] if users else "").replace(":", " ").split() if w.isalpha() and len(w) > 3
        ]
        return Reply.tool_call(
            "search_catalog", {"query": max(words, key=len) if words else "bread", "limit": 5}
        )
    if offered:
        picked: list[dict[str, Any]] = []
        for message in reversed(results):
            try:
                found = orjson.loads(message.get("content") or "{}").get("results") or []
            except (orjson.JSONDecodeError, AttributeError):
                found = []
            if found:
                picked = [
                    {
                        "product_id": found[0]["product_id"],
                        "quantity": 2,
                        "reason": "it matches what you asked for",
                    }
                ]
                break
        return Reply.text(orjson.dumps({"items": picked}).decode())
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    return Reply.text(f"You said: {(users[-1] if users else '')[:200]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m yummi_ai.fake_openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args(argv)
    fake = FakeOpenAI(host=args.host, port=args.port)
    print(f"fake OpenAI at {fake.base_url} (OPENAI_BASE_URL); Ctrl-C stops", flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()
