"""Pure ASGI: identify the caller once, spend its rate-limit budgets, answer 429 or add `RateLimit-*`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yummi_gateway.adapters.redis_client import RedisUnavailable
from yummi_gateway.caller import Caller, client_ip_of, identify, reset_caller, scope_header, set_caller
from yummi_gateway.domain.identity import MissingToken
from yummi_gateway.domain.rate_limits import RouteClass, buckets_for, classify, fails_closed
from yummi_gateway.problems import problem

if TYPE_CHECKING:
    from yummi_gateway.bootstrap import Gateway

RATE_LIMITED_TYPE = "urn:yummi:problem:rate-limited"


class RateLimitMiddleware:
    """Per user when the token verifies (plus the AI budget on /v1/ai/*), else per client IP.

    The verified identity (or why there is none) is kept for the auth dependency, so a token is checked once.
    Without Redis, AI calls are refused (503) and everything else is let through.
    """

    def __init__(self, app: ASGIApp, *, gateway: Callable[[], Gateway]) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gateway = self.gateway()
        route = classify(scope.get("path", ""))
        caller = Caller(client_ip=client_ip_of(scope, gateway.settings.trusted_proxy_networks))
        authorization = scope_header(scope, b"authorization")
        if authorization is None:
            caller.failure = MissingToken()
        elif route in (RouteClass.STANDARD, RouteClass.AI):
            caller.identity, caller.failure = await identify(gateway, authorization)
        token = set_caller(caller)
        try:
            await self._limited(gateway, route, caller, scope, receive, send)
        finally:
            reset_caller(token)

    async def _limited(
        self, gateway: Gateway, route: RouteClass, caller: Caller, scope: Scope, receive: Receive, send: Send
    ) -> None:
        user = caller.identity.clerk_user_id if caller.identity else None
        buckets = buckets_for(route, user=user, client_ip=caller.client_ip, limits=gateway.limits)
        if not buckets or gateway.limiter is None:
            await self.app(scope, receive, send)
            return
        try:
            decision = await gateway.limiter.spend(buckets)
        except RedisUnavailable:
            if fails_closed(route):
                response = problem(
                    503,
                    "Rate limits cannot be checked right now; try again shortly.",
                    headers={"Retry-After": "5"},
                )
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)  # fail open: the guard logged the outage once
            return
        headers = decision.headers()
        if not decision.allowed:
            response = problem(
                429,
                f"Too many requests; try again in {decision.retry_after} s.",
                title="Too Many Requests",
                type_=RATE_LIMITED_TYPE,
                headers={k.decode(): v.decode() for k, v in headers},
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in headers if k not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
