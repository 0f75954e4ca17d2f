"""The Idempotency-Key middleware as plain ASGI with a fake store: what it does before the route runs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from yummi_gateway.caller import Caller, reset_caller, set_caller
from yummi_gateway.domain.identity import Identity
from yummi_gateway.idempotency import IdempotencyMiddleware

pytestmark = pytest.mark.asyncio(loop_scope="session")


class RefusingStore:
    """Fails the test if the middleware ever claims a key."""

    async def claim(self, **kwargs: Any) -> Any:
        raise AssertionError("nothing should be claimed")


async def route(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the route should not run")


def scope(key: bytes) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/orders",
        "headers": [(b"idempotency-key", key), (b"content-type", b"application/json")],
        "query_string": b"",
    }


async def call(key: bytes, messages: list[Message]) -> list[Message]:
    sent: list[Message] = []
    incoming = iter(messages)

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message)

    gateway = SimpleNamespace(idempotency=RefusingStore())
    middleware = IdempotencyMiddleware(route, gateway=lambda: gateway)  # type: ignore[arg-type,return-value]
    token = set_caller(Caller(client_ip="127.0.0.1", identity=Identity(clerk_user_id="user_1", email=None)))
    try:
        await middleware(scope(key), receive, send)
    finally:
        reset_caller(token)
    return sent


async def test_a_client_that_leaves_mid_body_runs_nothing_and_claims_nothing() -> None:
    partial = {"type": "http.request", "body": b'{"items": [', "more_body": True}
    assert await call(b"key-1", [partial, {"type": "http.disconnect"}]) == []


async def test_a_malformed_key_is_refused_before_the_body_is_read() -> None:
    sent = await call(b"\x01bad", [])
    assert sent[0]["status"] == 400
