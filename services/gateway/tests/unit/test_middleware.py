"""Edge middleware driven as plain ASGI: body limits (declared and streamed) and the request id."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from yummi_gateway.metrics import HttpMetrics
from yummi_gateway.middleware import BodyLimitMiddleware, EdgeMiddleware

pytestmark = pytest.mark.asyncio(loop_scope="session")
LIMIT = 1024


class BodyReader:
    """An app that reads the whole body then answers 200 with its size."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": str(size).encode()})


def http_scope(
    method: str = "POST", path: str = "/v1/orders", headers: list[tuple[bytes, bytes]] | None = None
) -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}


class Chunks:
    """A receive callable yielding `count` chunks of `size` bytes, counting how many were pulled."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size, self.pulled = count, size, 0

    async def __call__(self) -> Message:
        self.pulled += 1
        more = self.pulled < self.count
        return {"type": "http.request", "body": b"x" * self.size, "more_body": more}


async def run(app: Any, scope: Scope, receive: Any) -> tuple[int, dict[bytes, bytes], bytes]:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def test_declared_content_length_over_the_limit_is_413_without_calling_the_app() -> None:
    inner = BodyReader()
    app = BodyLimitMiddleware(inner, default_limit=LIMIT)
    receive = Chunks(1, 10)
    status, headers, body = await run(
        app, http_scope(headers=[(b"content-length", str(LIMIT + 1).encode())]), receive
    )
    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    assert orjson.loads(body)["status"] == 413
    assert not inner.called
    assert receive.pulled == 0


async def test_a_chunked_body_growing_past_the_limit_is_413_without_reading_the_rest() -> None:
    app = BodyLimitMiddleware(BodyReader(), default_limit=LIMIT)
    receive = Chunks(count=1000, size=300)  # 300 KB on the way; the limit is 1 KB
    status, _, _ = await run(app, http_scope(), receive)
    assert status == 413
    assert receive.pulled == 4  # the fourth chunk crossed the limit; nothing after it was pulled


async def test_a_body_within_the_limit_reaches_the_app() -> None:
    app = BodyLimitMiddleware(BodyReader(), default_limit=LIMIT)
    status, _, body = await run(app, http_scope(headers=[(b"content-length", b"900")]), Chunks(3, 300))
    assert (status, body) == (200, b"900")


async def test_routes_with_their_own_limit_use_it() -> None:
    app = BodyLimitMiddleware(
        BodyReader(), default_limit=LIMIT, limits=[("POST", "/v1/admin/catalog/import", 10 * LIMIT)]
    )
    status, _, _ = await run(app, http_scope(path="/v1/admin/catalog/import"), Chunks(5, 1000))
    assert status == 200
    status, _, _ = await run(app, http_scope(path="/v1/orders"), Chunks(5, 1000))
    assert status == 413


async def test_a_non_numeric_content_length_is_400() -> None:
    app = BodyLimitMiddleware(BodyReader(), default_limit=LIMIT)
    status, _, _ = await run(app, http_scope(headers=[(b"content-length", b"12abc")]), Chunks(1, 1))
    assert status == 400


def edge(app: Any) -> EdgeMiddleware:
    return EdgeMiddleware(app, metrics=HttpMetrics(), hsts=True)


async def test_a_sane_client_request_id_is_echoed() -> None:
    status, headers, _ = await run(
        edge(BodyReader()), http_scope(headers=[(b"x-request-id", b"abc-123")]), Chunks(1, 0)
    )
    assert status == 200
    assert headers[b"x-request-id"] == b"abc-123"


@pytest.mark.parametrize("value", [b"has space", b"x" * 200, b"line\x01break"])
async def test_an_insane_client_request_id_is_replaced(value: bytes) -> None:
    _, headers, _ = await run(
        edge(BodyReader()), http_scope(headers=[(b"x-request-id", value)]), Chunks(1, 0)
    )
    assert headers[b"x-request-id"] != value
    assert len(headers[b"x-request-id"]) == 32


async def test_every_response_gets_the_security_headers() -> None:
    _, headers, _ = await run(edge(BodyReader()), http_scope(), Chunks(1, 0))
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"strict-transport-security"].startswith(b"max-age=")
    assert b"default-src 'none'" in headers[b"content-security-policy"]


async def test_an_unhandled_exception_is_a_generic_500_problem_with_the_request_id() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("SELECT * FROM secrets failed")

    status, headers, body = await run(
        edge(broken), http_scope(headers=[(b"x-request-id", b"rid-1")]), Chunks(1, 0)
    )
    assert status == 500
    assert headers[b"x-request-id"] == b"rid-1"
    assert b"SELECT" not in body
    assert orjson.loads(body)["status"] == 500


async def test_an_incoming_traceparent_is_the_context_of_the_request_and_no_longer_after_it() -> None:
    from opentelemetry import trace

    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    seen: list[tuple[str, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        context = trace.get_current_span().get_span_context()
        seen.append((format(context.trace_id, "032x"), format(context.span_id, "016x")))
        await BodyReader()(scope, receive, send)

    traceparent = f"00-{trace_id}-{parent_id}-01".encode()
    status, _, _ = await run(edge(app), http_scope(headers=[(b"traceparent", traceparent)]), Chunks(1, 0))
    assert status == 200
    assert seen == [(trace_id, parent_id)]
    assert not trace.get_current_span().get_span_context().is_valid

    await run(edge(app), http_scope(), Chunks(1, 0))  # no header: no trace is invented
    assert seen[1] == ("0" * 32, "0" * 16)


async def test_several_request_ids_the_first_wins_and_a_bearer_means_no_store() -> None:
    headers = [(b"x-request-id", b"first"), (b"authorization", b"Bearer x"), (b"x-request-id", b"second")]
    _, answer, _ = await run(edge(BodyReader()), http_scope(headers=headers), Chunks(1, 0))
    assert answer[b"x-request-id"] == b"first"
    assert answer[b"cache-control"] == b"no-store"
    _, answer, _ = await run(edge(BodyReader()), http_scope(), Chunks(1, 0))
    assert b"cache-control" not in answer
