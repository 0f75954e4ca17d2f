"""Pure ASGI: `Idempotency-Key` on the POSTs that create things — run once per user and key, replay after."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yummi_common.logging import get_logger
from yummi_gateway.adapters.idempotency_store import Claim, RedisIdempotencyStore
from yummi_gateway.adapters.redis_client import RedisUnavailable
from yummi_gateway.caller import current_caller, scope_header
from yummi_gateway.domain.idempotency import (
    MAX_STORED_BODY_BYTES,
    InvalidKey,
    Record,
    StoredResponse,
    fingerprint,
    honours_key,
    is_kept,
    validate_key,
)
from yummi_gateway.problems import problem

if TYPE_CHECKING:
    from yummi_gateway.bootstrap import Gateway

log = get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
KEY_REUSED_TYPE = "urn:yummi:problem:idempotency-key-reused"
IN_FLIGHT_TYPE = "urn:yummi:problem:idempotency-key-in-flight"


class IdempotencyMiddleware:
    """Claims `(user, key)` in Redis before the route runs; a retry gets the kept answer, not a second effect.

    Same key with another body → 422; while the first still runs → 409; a 5xx/409/429 first answer frees
    the key. Without Redis a request carrying a key is refused (503) rather than risk running twice.
    Unauthenticated requests pass through (the route answers 401).
    """

    def __init__(self, app: ASGIApp, *, gateway: Callable[[], Gateway]) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not honours_key(scope.get("method", ""), scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        raw_key = scope_header(scope, b"idempotency-key")
        caller = current_caller()
        if raw_key is None or caller is None or caller.identity is None:
            await self.app(scope, receive, send)
            return
        try:
            key = validate_key(raw_key)
        except InvalidKey as exc:
            await problem(400, str(exc), title="Malformed Idempotency-Key")(scope, receive, send)
            return
        store = self.gateway().idempotency
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before sending the whole request: nothing to run or answer
        request_fingerprint = fingerprint(
            method=scope["method"], path=scope["path"], query=scope.get("query_string", b""), body=body
        )
        try:
            if store is None:
                raise RedisUnavailable
            claim = await store.claim(
                user=caller.identity.clerk_user_id, idempotency_key=key, fingerprint=request_fingerprint
            )
        except RedisUnavailable:
            response = problem(
                503,
                "Idempotency keys cannot be checked right now; try again shortly.",
                headers={"Retry-After": "5"},
            )
            await response(scope, receive, send)
            return

        if claim.existing is not None:
            await _answer_retry(claim.existing, request_fingerprint)(scope, receive, send)
            return
        await self._run_once(scope, _replaying(body, receive), send, store, claim, request_fingerprint)

    async def _run_once(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        store: RedisIdempotencyStore,
        claim: Claim,
        request_fingerprint: str,
    ) -> None:
        status = 500
        content_type: str | None = None
        chunks: list[bytes] = []
        size = 0
        settled = False

        async def capture(message: Message) -> None:
            nonlocal status, content_type, size, settled
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = next(
                    (
                        v.decode("latin-1")
                        for k, v in message.get("headers", ())
                        if k.lower() == b"content-type"
                    ),
                    None,
                )
            elif message["type"] == "http.response.body" and not settled:
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_STORED_BODY_BYTES:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    settled = True
                    # Kept before the last bytes go out: a client that saw the answer can always replay it.
                    await _settle(store, claim, request_fingerprint, status, content_type, chunks, size)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not settled:
                await _release(store, claim)


async def _settle(
    store: RedisIdempotencyStore,
    claim: Claim,
    request_fingerprint: str,
    status: int,
    content_type: str | None,
    chunks: list[bytes],
    size: int,
) -> None:
    """Keep a final answer for replays; free the key after a failure (or an answer too big to keep)."""
    if not is_kept(status) or size > MAX_STORED_BODY_BYTES:
        await _release(store, claim)
        return
    response = StoredResponse(status=status, content_type=content_type, body=b"".join(chunks))
    try:
        if not await store.keep(claim, fingerprint=request_fingerprint, response=response):
            log.warning("idempotency lease ran out before the response was kept", status=status)
    except RedisUnavailable:
        # The running marker stays until its lease ends: retries meanwhile get 409, never a second run.
        log.error("idempotent response could not be kept", status=status)


async def _release(store: RedisIdempotencyStore, claim: Claim) -> None:
    try:
        await store.release(claim)
    except RedisUnavailable:
        log.error("idempotency key could not be freed; it frees itself when the lease ends")


def _answer_retry(existing: Record, request_fingerprint: str) -> Response:
    """What a key already holds decides: another request (422), still running (409), or the kept answer."""
    if existing.fingerprint != request_fingerprint:
        return problem(
            422,
            "This Idempotency-Key was used with a different request; use a new key.",
            title="Idempotency-Key reused",
            type_=KEY_REUSED_TYPE,
        )
    if existing.state == "running" or existing.response is None:
        return problem(
            409,
            "A request with this Idempotency-Key is still in progress; retry shortly.",
            title="Request in progress",
            type_=IN_FLIGHT_TYPE,
            headers={"Retry-After": "1"},
        )
    return _replay(existing.response)


def _replay(stored: StoredResponse) -> Response:
    headers = {REPLAYED_HEADER: "true"}
    if stored.content_type:
        headers["Content-Type"] = stored.content_type
    return Response(stored.body, status_code=stored.status, headers=headers)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (capped by the body-limit middleware outside); None if the client left."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body read here, then waits on the real one (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
