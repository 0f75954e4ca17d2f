"""Rate limits in Redis: per user, per client IP, the stricter AI budget, shared by replicas, Redis down."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
Auth = Callable[..., dict[str, str]]
PAYFAST_IP = "197.97.145.144"  # what the fake payments service accepts ITNs from
_hosts = itertools.count(1)
_net = random.randrange(0, 255)  # noqa: S311 - spreads this run's addresses away from earlier runs' keys


def fresh_ip() -> str:
    """An address no other test spends budget from (the session's Redis keys outlive a test)."""
    n = next(_hosts)
    return f"198.18.{_net}.{n}" if n < 255 else f"198.19.{_net}.{n % 255}"


def assert_rate_headers(response: httpx.Response, *, limit: int, remaining: int) -> None:
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == str(remaining)
    assert int(response.headers["ratelimit-reset"]) >= 1
    assert response.headers["ratelimit-policy"] == f"{limit};w=60"


async def test_anonymous_calls_are_limited_per_client_ip_with_ratelimit_headers(
    app_client: Callable[..., Any],
) -> None:
    async with app_client(client_ip=fresh_ip(), rate_limit_ip_per_minute=3) as http:
        for remaining in (2, 1, 0):
            allowed = await http.get("/v1/catalog", params={"limit": 1})
            assert allowed.status_code == 200
            assert_rate_headers(allowed, limit=3, remaining=remaining)
        refused = await http.get(
            "/v1/catalog", params={"limit": 1}, headers={"Origin": "https://app.example.com"}
        )
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # one request's share of the minute
    assert_rate_headers(refused, limit=3, remaining=0)
    assert refused.headers["x-request-id"]
    assert refused.headers["access-control-allow-origin"] == "https://app.example.com"  # readable by the app


async def test_each_user_has_a_budget_of_their_own(app_client: Callable[..., Any], auth: Auth) -> None:
    alice, bob = auth(), auth()
    async with app_client(client_ip=fresh_ip(), rate_limit_per_minute=2, rate_limit_ip_per_minute=1) as http:
        statuses = [(await http.get("/v1/me", headers=alice)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        # Bob shares Alice's address, and neither her budget nor the (smaller) per-IP one touches him.
        assert (await http.get("/v1/me", headers=bob)).status_code == 200
        assert_rate_headers(await http.get("/v1/me", headers=bob), limit=2, remaining=0)


async def test_ai_calls_spend_a_stricter_budget_and_the_user_one(
    app_client: Callable[..., Any], auth: Auth, fake_services: Any
) -> None:
    user = auth()
    settings = {
        "ai_grpc_addr": fake_services.addr,
        "rate_limit_per_minute": 10,
        "rate_limit_ai_per_minute": 2,
    }
    async with app_client(client_ip=fresh_ip(), **settings) as http:
        ai = [await http.get("/v1/ai/usage", headers=user) for _ in range(3)]
        assert [r.status_code for r in ai] == [200, 200, 429]
        assert_rate_headers(ai[1], limit=2, remaining=0)  # the tighter budget is the one reported
        me = await http.get("/v1/me", headers=user)
        assert me.status_code == 200
        assert_rate_headers(me, limit=10, remaining=7)  # 2 AI calls + this one; the refused call cost nothing


async def test_a_bad_token_spends_the_client_ip_budget(app_client: Callable[..., Any]) -> None:
    async with app_client(client_ip=fresh_ip(), rate_limit_ip_per_minute=2) as http:
        statuses = [
            (await http.get("/v1/me", headers={"Authorization": f"Bearer forged.{n}.token"})).status_code
            for n in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_the_client_ip_comes_from_trusted_proxies_only(app_client: Callable[..., Any]) -> None:
    async with app_client(
        client_ip="10.9.8.7", trusted_proxies="10.0.0.0/8", rate_limit_ip_per_minute=1
    ) as http:
        first, second = fresh_ip(), fresh_ip()
        assert (await http.get("/v1/catalog", headers={"X-Forwarded-For": first})).status_code == 200
        assert (await http.get("/v1/catalog", headers={"X-Forwarded-For": first})).status_code == 429
        # Behind our proxy, another client is another budget.
        assert (await http.get("/v1/catalog", headers={"X-Forwarded-For": second})).status_code == 200
    async with app_client(
        client_ip=fresh_ip(), trusted_proxies="10.0.0.0/8", rate_limit_ip_per_minute=1
    ) as http:
        # A client that is not our proxy cannot invent addresses to get fresh budgets.
        assert (await http.get("/v1/catalog", headers={"X-Forwarded-For": fresh_ip()})).status_code == 200
        assert (await http.get("/v1/catalog", headers={"X-Forwarded-For": fresh_ip()})).status_code == 429


async def test_two_gateway_replicas_sharing_redis_allow_exactly_the_limit(
    app_client: Callable[..., Any],
) -> None:
    ip = fresh_ip()
    async with (
        app_client(client_ip=ip, rate_limit_ip_per_minute=5) as one,
        app_client(client_ip=ip, rate_limit_ip_per_minute=5) as two,
    ):
        responses = await asyncio.gather(
            *((one if n % 2 else two).get("/v1/catalog", params={"limit": 1}) for n in range(12))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [429] * 7


async def test_health_metrics_and_payfast_itns_are_not_throttled_by_browsing(
    app_client: Callable[..., Any], fake_services: Any
) -> None:
    async with app_client(client_ip=PAYFAST_IP, rate_limit_ip_per_minute=1) as http:
        assert (await http.get("/v1/catalog")).status_code == 200
        assert (await http.get("/v1/catalog")).status_code == 429
        for _ in range(3):
            assert (await http.get("/v1/health")).status_code == 200
            assert (await http.get("/metrics")).status_code == 200
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        # ITNs from the same address have their own, ten times larger, budget.
        for _ in range(3):
            itn = await http.post("/payments/payfast/itn", content=b"payment_status=COMPLETE", headers=form)
            assert itn.status_code == 200, itn.text
            assert itn.headers["ratelimit-limit"] == "10"


async def test_without_redis_reads_fail_open_and_ai_calls_fail_closed(
    app_client: Callable[..., Any], auth: Auth, fake_services: Any
) -> None:
    dead_redis = f"redis://{fake_services.dead_addr}/0"  # nothing listens there
    user = auth()
    async with app_client(redis_url=dead_redis, ai_grpc_addr=fake_services.addr) as http:
        catalog = await http.get("/v1/catalog", params={"limit": 1})
        assert catalog.status_code == 200
        assert "ratelimit-limit" not in catalog.headers
        assert (await http.get("/v1/me", headers=user)).status_code == 200
        ai = await http.get("/v1/ai/usage", headers=user)
        assert ai.status_code == 503
        assert ai.headers["content-type"].startswith("application/problem+json")
        assert ai.headers["retry-after"]
        order = {"items": [{"product_id": "WW0001", "quantity": 1}]}
        assert (await http.post("/v1/orders", json=order, headers=user)).status_code == 201
        keyed = await http.post("/v1/orders", json=order, headers={**user, "Idempotency-Key": "k-1"})
        assert keyed.status_code == 503  # refused rather than risk placing it twice


async def test_rate_limits_are_cheap_one_script_call_per_request(
    app_client: Callable[..., Any], auth: Auth
) -> None:
    async with app_client(client_ip=fresh_ip()) as http:
        gateway = http._transport.app.state.gateway  # type: ignore[attr-defined]
        assert gateway.pipeline is not None  # the limiter's own pipelined connection
        await http.get("/v1/me", headers=auth())  # the script is known to the server from here on
        before = await script_calls(gateway.redis)
        for _ in range(3):
            assert (await http.get("/v1/me", headers=auth())).status_code == 200
        assert await script_calls(gateway.redis) - before == 3


async def script_calls(redis: Any) -> int:
    """EVALSHA and EVAL calls the Redis server has answered (its own count: nothing here is patched)."""
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))
