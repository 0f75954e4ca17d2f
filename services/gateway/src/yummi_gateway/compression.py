"""Pure ASGI: brotli or gzip for whole JSON/HTML/text responses of 1 KB or more, when the client takes it."""

from __future__ import annotations

import gzip
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yummi_gateway.caller import scope_header
from yummi_gateway.domain.http_caching import accepted_encoding

try:
    import brotli  # type: ignore[import-untyped]
except ImportError:  # brotli is a dependency; without it gzip still works
    brotli = None

MINIMUM_SIZE = 1024
COMPRESSIBLE_TYPES = ("application/json", "application/problem+json", "text/html", "text/plain")
# Fast settings: dynamic responses are compressed on every request, so speed beats the last few percent.
BROTLI_QUALITY = 4
GZIP_LEVEL = 5

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, GZIP_LEVEL, mtime=0)
}
if brotli is not None:
    ENCODERS = {"br": lambda data: brotli.compress(data, quality=BROTLI_QUALITY), **ENCODERS}


def _compressible(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in COMPRESSIBLE_TYPES


class CompressionMiddleware:
    """Compresses single-message bodies only: streams (SSE, uploads) pass through untouched."""

    def __init__(self, app: ASGIApp, *, minimum_size: int = MINIMUM_SIZE) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = accepted_encoding(scope_header(scope, b"accept-encoding"), list(ENCODERS))
        held: Message | None = None

        async def compressing_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                held = message  # wait for the body to know its size
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            start, held = held, None
            body = message.get("body", b"")
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            whole = not message.get("more_body", False)
            if whole and _compressible(headers.get("content-type")) and "content-encoding" not in headers:
                headers.add_vary_header("Accept-Encoding")
                if encoding is not None and len(body) >= self.minimum_size:
                    compressed = ENCODERS[encoding](body)
                    if len(compressed) < len(body):
                        body = compressed
                        headers["Content-Encoding"] = encoding
                        headers["Content-Length"] = str(len(body))
                        etag = headers.get("etag")
                        if etag and not etag.startswith("W/"):
                            headers["ETag"] = "W/" + etag  # a strong validator names exact bytes
                        message = {**message, "body": body}
            await send({**start, "headers": headers.raw})
            await send(message)

        await self.app(scope, receive, compressing_send)
