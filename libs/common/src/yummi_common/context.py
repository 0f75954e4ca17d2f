"""Per-request context that travels across hops: the request id (HTTP → gRPC metadata → NATS headers)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

REQUEST_ID_METADATA_KEY = "x-request-id"
REQUEST_ID_HEADER = "X-Request-ID"


def current_request_id() -> str:
    """The request id of this task, creating one when none is set."""
    rid = request_id.get()
    if rid is None:
        rid = uuid.uuid4().hex
        request_id.set(rid)
    return rid


def sanitize_request_id(value: str | None) -> str | None:
    """Accept a client-sent request id only when it is short and printable (it ends up in logs)."""
    if not value or len(value) > 128:
        return None
    if not all(33 <= ord(ch) < 127 for ch in value):
        return None
    return value
