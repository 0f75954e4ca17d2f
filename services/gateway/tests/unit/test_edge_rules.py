"""Pure edge rules: rate-limit budgets, Idempotency-Key rules, negotiation, ETags, the Redis guard."""

from __future__ import annotations

import pytest

from yummi_gateway.adapters.redis_client import RedisGuard, RedisUnavailable
from yummi_gateway.domain.http_caching import accepted_encoding, etag_matches, weak_etag
from yummi_gateway.domain.idempotency import (
    InvalidKey,
    Record,
    StoredResponse,
    fingerprint,
    honours_key,
    is_kept,
    validate_key,
)
from yummi_gateway.domain.rate_limits import (
    Bucket,
    BucketState,
    Limits,
    RouteClass,
    buckets_for,
    classify,
    decide,
    fails_closed,
)

LIMITS = Limits(per_user=120, per_user_ai=20, per_ip=60)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/health", RouteClass.EXEMPT),
        ("/v1/thin/health", RouteClass.EXEMPT),
        ("/metrics", RouteClass.EXEMPT),
        ("/payments/payfast/itn", RouteClass.WEBHOOK),
        ("/v1/payments/payfast/itn", RouteClass.WEBHOOK),
        ("/v1/webhooks/clerk", RouteClass.WEBHOOK),
        ("/v1/ai/complete", RouteClass.AI),
        ("/v1/ai/credentials/123", RouteClass.AI),
        ("/v1/catalog", RouteClass.STANDARD),
        ("/v1/orders", RouteClass.STANDARD),
        ("/v1/healthz", RouteClass.STANDARD),
    ],
)
def test_paths_fall_into_their_rate_limit_class(path: str, route: RouteClass) -> None:
    assert classify(path) is route


def test_anonymous_calls_spend_the_client_ip_budget() -> None:
    assert buckets_for(RouteClass.STANDARD, user=None, client_ip="1.2.3.4", limits=LIMITS) == [
        Bucket("ip:1.2.3.4", "all", 60)
    ]


def test_authenticated_calls_spend_the_user_budget_and_ai_calls_the_ai_one_too() -> None:
    assert buckets_for(RouteClass.STANDARD, user="user_1", client_ip="1.2.3.4", limits=LIMITS) == [
        Bucket("u:user_1", "all", 120)
    ]
    assert buckets_for(RouteClass.AI, user="user_1", client_ip="1.2.3.4", limits=LIMITS) == [
        Bucket("u:user_1", "all", 120),
        Bucket("u:user_1", "ai", 20),
    ]


def test_webhooks_have_a_generous_per_ip_budget_and_probes_none() -> None:
    assert buckets_for(RouteClass.WEBHOOK, user=None, client_ip="197.97.145.144", limits=LIMITS) == [
        Bucket("ip:197.97.145.144", "hook", 600)
    ]
    assert buckets_for(RouteClass.EXEMPT, user="user_1", client_ip="1.2.3.4", limits=LIMITS) == []


def test_only_ai_calls_fail_closed() -> None:
    assert fails_closed(RouteClass.AI)
    assert not any(fails_closed(r) for r in (RouteClass.STANDARD, RouteClass.WEBHOOK, RouteClass.EXEMPT))


def test_an_allowed_request_reports_the_bucket_closest_to_empty() -> None:
    decision = decide(
        [
            BucketState(limit=120, allowed=True, remaining=100, retry_after=0, reset=10),
            BucketState(limit=20, allowed=True, remaining=3, retry_after=0, reset=51),
        ]
    )
    assert (decision.allowed, decision.limit, decision.remaining, decision.reset) == (True, 20, 3, 51)
    assert dict(decision.headers()) == {
        b"ratelimit-limit": b"20",
        b"ratelimit-remaining": b"3",
        b"ratelimit-reset": b"51",
        b"ratelimit-policy": b"20;w=60",
    }


def test_a_refused_request_reports_the_longest_wait_with_retry_after() -> None:
    decision = decide(
        [
            BucketState(limit=120, allowed=False, remaining=0, retry_after=2, reset=60),
            BucketState(limit=20, allowed=False, remaining=0, retry_after=7, reset=60),
        ]
    )
    assert not decision.allowed
    assert decision.limit == 20
    assert dict(decision.headers())[b"retry-after"] == b"7"


@pytest.mark.parametrize(
    ("method", "path", "honoured"),
    [
        ("POST", "/v1/orders", True),
        ("POST", "/v1/basket/checkout", True),
        ("POST", "/v1/payments/payfast/initiate", True),
        ("POST", "/v1/ai/complete", True),
        ("POST", "/v1/ai/tools/basket-suggestions", True),
        ("GET", "/v1/orders", False),
        ("POST", "/v1/orders/next", False),
        ("POST", "/v1/orders/abc/cancel", False),
    ],
)
def test_which_requests_honour_an_idempotency_key(method: str, path: str, honoured: bool) -> None:
    assert honours_key(method, path) is honoured


@pytest.mark.parametrize(
    "value", ["a", "order-2024-01-01T00:00:00Z", "k" * 255, "with inner space", "~!@#$%"]
)
def test_printable_keys_up_to_255_characters_are_valid(value: str) -> None:
    assert validate_key(value) == value


@pytest.mark.parametrize("value", ["", " ", "k" * 256, "tab\there", "line\nbreak", "caf\u00e9", "\x00"])
def test_other_keys_are_invalid(value: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(value)


def test_the_fingerprint_ignores_json_key_order_and_spacing_but_not_content() -> None:
    a = fingerprint(method="POST", path="/v1/orders", query=b"", body=b'{"a": 1, "b": [1, 2]}')
    b = fingerprint(method="POST", path="/v1/orders", query=b"", body=b'{"b":[1,2],"a":1}')
    assert a == b
    assert a != fingerprint(method="POST", path="/v1/orders", query=b"", body=b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint(
        method="POST", path="/v1/basket/checkout", query=b"", body=b'{"a": 1, "b": [1, 2]}'
    )
    assert a != fingerprint(method="POST", path="/v1/orders", query=b"x=1", body=b'{"a": 1, "b": [1, 2]}')
    raw = fingerprint(method="POST", path="/v1/orders", query=b"", body=b"{not json")
    assert raw != fingerprint(method="POST", path="/v1/orders", query=b"", body=b"{not json!")


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        (200, True),
        (201, True),
        (404, True),
        (422, True),
        (409, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_final_answers_are_kept_and_failures_free_the_key(status: int, kept: bool) -> None:
    assert is_kept(status) is kept


def test_records_survive_encoding() -> None:
    running = Record(state="running", fingerprint="f", owner="o")
    assert Record.decode(running.encode()) == running
    done = Record(
        state="done",
        fingerprint="f",
        response=StoredResponse(status=201, content_type="application/json", body=b'{"x":"\n"}'),
    )
    assert Record.decode(done.encode()) == done


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0", None),
        ("*", "br"),
        ("identity", None),
        ("GZIP;Q=0.9", "gzip"),
        ("br;q=junk, gzip", "gzip"),
    ],
)
def test_the_encoding_follows_the_clients_preferences(header: str | None, expected: str | None) -> None:
    assert accepted_encoding(header, ["br", "gzip"]) == expected


def test_etags_are_weak_and_compared_weakly() -> None:
    tag = weak_etag("catalog", "v1", "checksum", '{"limit":2}')
    assert tag.startswith('W/"') and tag == weak_etag("catalog", "v1", "checksum", '{"limit":2}')
    assert tag != weak_etag("catalog", "v1", "other", '{"limit":2}')
    assert etag_matches(tag, tag)
    assert etag_matches(tag.removeprefix("W/"), tag)
    assert etag_matches(f'"a", {tag}', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('W/"other"', tag)
    assert not etag_matches(None, tag)


def test_the_redis_guard_skips_redis_for_a_moment_after_a_failure() -> None:
    now = [100.0]
    guard = RedisGuard(cooldown=1.0, clock=lambda: now[0])
    guard.check()
    assert isinstance(guard.failed(ConnectionError("refused"), during="test"), RedisUnavailable)
    with pytest.raises(RedisUnavailable):
        guard.check()
    now[0] += 1.01
    guard.check()  # one probe goes through again
    guard.succeeded()
    guard.check()
