"""The compression middleware driven as plain ASGI: what is compressed, how, and what passes untouched."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import pytest
from starlette.types import Message, Receive, Scope, Send

from yummi_gateway.compression import CompressionMiddleware

pytestmark = pytest.mark.asyncio(loop_scope="session")
BIG_JSON = b'{"items": [' + b",".join(b'{"title": "Product %d"}' % n for n in range(200)) + b"]}"


def responder(body: bytes, content_type: bytes = b"application/json", chunks: int = 1, **extra: bytes) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers += [(k.replace("_", "-").encode(), v) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        size = len(body) // chunks + 1
        parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        for index, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < len(parts) - 1})

    return app


async def run(app: Any, accept: bytes | None) -> tuple[dict[bytes, bytes], bytes, int]:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"accept-encoding", accept)] if accept is not None else []
    scope = {"type": "http", "method": "GET", "path": "/v1/catalog", "headers": headers, "query_string": b""}
    await CompressionMiddleware(app)(scope, receive, send)
    start = messages[0]
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    return dict(start["headers"]), b"".join(m.get("body", b"") for m in bodies), len(bodies)


async def test_large_json_is_brotli_compressed_when_accepted() -> None:
    headers, body, _ = await run(responder(BIG_JSON), b"gzip, br")
    assert headers[b"content-encoding"] == b"br"
    assert brotli.decompress(body) == BIG_JSON
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"vary"] == b"Accept-Encoding"


async def test_gzip_is_used_when_it_is_all_the_client_takes() -> None:
    headers, body, _ = await run(responder(BIG_JSON), b"gzip")
    assert headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(body) == BIG_JSON


@pytest.mark.parametrize("accept", [None, b"identity", b"br;q=0, gzip;q=0"])
async def test_nothing_is_compressed_for_a_client_that_does_not_accept_it(accept: bytes | None) -> None:
    headers, body, _ = await run(responder(BIG_JSON), accept)
    assert b"content-encoding" not in headers
    assert body == BIG_JSON
    assert headers[b"vary"] == b"Accept-Encoding"  # a shared cache must still keep the variants apart


async def test_bodies_under_one_kilobyte_are_sent_as_they_are() -> None:
    headers, body, _ = await run(responder(b'{"status": "ok"}' + b" " * 900), b"br")
    assert b"content-encoding" not in headers
    assert len(body) < 1024


async def test_streams_and_other_media_pass_untouched() -> None:
    headers, body, count = await run(responder(BIG_JSON * 3, b"text/event-stream", chunks=3), b"br")
    assert b"content-encoding" not in headers and count == 3 and body == BIG_JSON * 3
    headers, body, _ = await run(responder(BIG_JSON, b"image/png"), b"br")
    assert b"content-encoding" not in headers


async def test_an_already_encoded_body_is_not_encoded_again() -> None:
    encoded = gzip.compress(BIG_JSON)
    headers, body, _ = await run(responder(encoded, content_encoding=b"gzip"), b"br")
    assert headers[b"content-encoding"] == b"gzip"
    assert body == encoded


async def test_a_strong_etag_becomes_weak_once_the_bytes_change() -> None:
    headers, _, _ = await run(responder(BIG_JSON, etag=b'"abc"'), b"br")
    assert headers[b"etag"] == b'W/"abc"'
