"""Pure ASGI edge middleware: request id, security headers, access log, metrics, and streaming body limits."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yummi_common.context import request_id, sanitize_request_id
from yummi_common.logging import get_logger
from yummi_common.telemetry import attach_traceparent, detach_context
from yummi_gateway.metrics import HttpMetrics
from yummi_gateway.problems import problem

log = get_logger("yummi_gateway.access")

# What the auth dependency learns about the caller, for the access log line of this request.
_access_note: ContextVar[dict[str, Any] | None] = ContextVar("yummi_access_note", default=None)

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
HSTS = "max-age=63072000; includeSubDomains"


def note_user(user_id: str) -> None:
    """Record the authenticated user id for this request's access log line."""
    note = _access_note.get()
    if note is not None:
        note["user_id"] = user_id


def route_template(scope: Scope) -> str:
    """The matched route's template (bounded label cardinality); `unmatched` when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class EdgeMiddleware:
    """Outermost layer: every response, errors included, carries X-Request-ID and the security headers.

    With tracing off, an incoming `traceparent` becomes the request's context (logs carry its trace id, gRPC
    calls pass it on), as yummi_common.telemetry.TraceContextMiddleware would do in a layer of its own.

    It also answers any unhandled exception with a generic 500 problem (never a stack trace), and writes one
    access-log line and the metrics per request.
    """

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, hsts: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.hsts = hsts
        # The headers every response gets unless the app set them, by (docs page?, authenticated?).
        self._defaults = {
            (docs, authenticated): _default_headers(hsts=hsts, docs=docs, authenticated=authenticated)
            for docs in (False, True)
            for authenticated in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_rid: str | None = None
        traceparent: str | None = None
        authenticated = False
        for key, value in scope.get("headers", ()):
            key = key.lower()
            if key == b"x-request-id":
                if client_rid is None:
                    client_rid = value.decode("latin-1")
            elif key == b"authorization":
                authenticated = True
            elif key == b"traceparent" and traceparent is None:
                traceparent = value.decode("latin-1")
        # An incoming trace is the context of the whole request, its access-log line included.
        trace_token = attach_traceparent(traceparent)
        rid = sanitize_request_id(client_rid) or uuid.uuid4().hex
        rid_token = request_id.set(rid)
        note: dict[str, Any] = {}
        note_token = _access_note.set(note)
        started = time.perf_counter()
        status = 500
        response_started = False
        path = scope.get("path", "")
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        defaults = self._defaults[(path in DOCS_PATHS, authenticated)]

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message = {
                    **message,
                    "headers": _with_headers(message.get("headers", ()), rid_header, defaults),
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error", path=path, method=scope.get("method"))
            if not response_started:
                await problem(500, "An unexpected error occurred.")(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope.get("method", "")
            self.metrics.observe(method=method, route=route, status=status, seconds=elapsed)
            log.info(
                "request",
                method=method,
                route=route,
                status=status,
                ms=round(elapsed * 1000, 2),
                user_id=note.get("user_id"),
            )
            _access_note.reset(note_token)
            request_id.reset(rid_token)
            if trace_token is not None:
                detach_context(trace_token)


def _default_headers(*, hsts: bool, docs: bool, authenticated: bool) -> tuple[tuple[bytes, bytes], ...]:
    defaults = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    if not docs:
        defaults.append((b"content-security-policy", API_CSP.encode()))
    if hsts:
        defaults.append((b"strict-transport-security", HSTS.encode()))
    if authenticated:
        defaults.append((b"cache-control", b"no-store"))
    return tuple(defaults)


def _with_headers(
    raw: Iterable[tuple[bytes, bytes]],
    rid_header: tuple[bytes, bytes],
    defaults: tuple[tuple[bytes, bytes], ...],
) -> list[tuple[bytes, bytes]]:
    """The response's headers, its request id replaced by ours, plus each default it did not set."""
    headers = []
    present = set()
    for key, value in raw:
        lower = key.lower()
        if lower != b"x-request-id":
            headers.append((key, value))
            present.add(lower)
    headers.append(rid_header)
    headers.extend(header for header in defaults if header[0] not in present)
    return headers


class PayloadTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit (FastAPI re-raises HTTPExceptions)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")
        self.limit = limit


class BodyLimitMiddleware:
    """Refuses bodies over the route's limit: up front by Content-Length, and while a chunked body streams."""

    def __init__(
        self, app: ASGIApp, *, default_limit: int, limits: Iterable[tuple[str, str, int]] = ()
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = [(method, re.compile(pattern), limit) for method, pattern, limit in limits]

    def limit_for(self, method: str, path: str) -> int:
        for route_method, pattern, limit in self.limits:
            if method == route_method and pattern.fullmatch(path):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("method", ""), scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await problem(400, "Content-Length is not a valid number.")(scope, receive, send)
                return
            if int(declared) > limit:
                await _too_large(limit)(scope, receive, send)
                return

        received = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise PayloadTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True  # stop reading: the rest of the body is never pulled in
                    raise PayloadTooLarge(limit)
            return message

        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge:
            if not response_started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> Any:
    return problem(413, f"The request body is larger than the limit of {limit} bytes.")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
