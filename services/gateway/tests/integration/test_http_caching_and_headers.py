"""Catalog ETags and 304s, compression of large JSON, HSTS only outside dev/test, strict CSP on HTML pages."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
from collections.abc import Callable
from typing import Any

import brotli
import httpx
import orjson
import pytest

from yummi.events.v1 import events_pb2
from yummi_common.messaging.events import subject_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
Auth = Callable[..., dict[str, str]]


async def test_catalog_pages_carry_a_weak_etag_and_public_caching(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/catalog", params={"limit": 2})
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert first.headers["cache-control"] == "public, max-age=60"
    again = await client.get("/v1/catalog", params={"limit": 2})
    assert again.headers["etag"] == etag
    other_query = await client.get("/v1/catalog", params={"limit": 3})
    assert other_query.headers["etag"] != etag
    thin = await client.get("/v1/thin/catalog", params={"limit": 2})
    assert thin.headers["etag"] not in (etag, other_query.headers["etag"])  # another body, another tag


async def test_if_none_match_with_the_current_etag_is_304_without_a_body(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/v1/catalog", params={"limit": 2})).headers["etag"]
    for validator in (etag, etag.removeprefix("W/"), f'"nope", {etag}', "*"):
        response = await client.get("/v1/catalog", params={"limit": 2}, headers={"If-None-Match": validator})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "public, max-age=60"
    stale = await client.get("/v1/catalog", params={"limit": 2}, headers={"If-None-Match": 'W/"old"'})
    assert stale.status_code == 200
    assert stale.json()["items"]


async def test_another_dataset_checksum_changes_the_etag(
    client: httpx.AsyncClient, fake_services: Any
) -> None:
    state = fake_services.state
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    before = (await client.get("/v1/catalog", params={"limit": 2})).headers["etag"]
    original, state.checksum = state.checksum, "ab" * 32  # an activation of another dataset
    try:
        gateway.pages.invalidate("ab" * 32)  # as its announcement does (see the edge cache tests below)
        response = await client.get("/v1/catalog", params={"limit": 2}, headers={"If-None-Match": before})
    finally:
        state.checksum = original
        gateway.pages.invalidate()
    assert response.status_code == 200
    assert response.headers["etag"] != before


async def test_repeats_are_answered_at_the_edge_until_an_activation_is_announced(
    client: httpx.AsyncClient, fake_services: Any
) -> None:
    state = fake_services.state
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    if gateway.runtime.nc is None:
        pytest.skip("needs NATS_URL: activations are announced over NATS")
    gateway.pages.invalidate()
    params = {"limit": 4, "category": "edge-cache"}
    first = await client.get("/v1/catalog", params=params)
    asked = state.list_calls
    hits = gateway.metrics.catalog_cache.labels("hit")._value.get()
    repeat = await client.get("/v1/catalog", params=params)
    assert repeat.content == first.content
    assert repeat.headers["etag"] == first.headers["etag"]
    assert repeat.headers["cache-control"] == "public, max-age=60"
    assert repeat.headers["content-type"] == first.headers["content-type"]
    assert "x-request-id" in repeat.headers  # still through the edge layers
    assert "ratelimit-remaining" in repeat.headers  # and the rate limits, which run before the cache
    assert state.list_calls == asked  # the catalog was not asked again
    assert gateway.metrics.catalog_cache.labels("hit")._value.get() == hits + 1
    conditional = await client.get(
        "/v1/catalog", params=params, headers={"If-None-Match": first.headers["etag"]}
    )
    assert conditional.status_code == 304
    assert state.list_calls == asked

    # another catalog replica activates a version: the announcement reaches every gateway over NATS
    original, state.checksum = state.checksum, "cd" * 32
    try:
        generation = gateway.pages.generation
        announcement = events_pb2.DatasetActivated(version="v0009", checksum_sha256="cd" * 32)
        subject = subject_for(gateway.settings.nats_subject_prefix, "catalog.dataset.activated")
        await gateway.runtime.nc.publish(subject, announcement.SerializeToString())
        for _ in range(200):
            if gateway.pages.generation != generation:
                break
            await asyncio.sleep(0.01)
        assert gateway.pages.generation == generation + 1
        assert gateway.pages.live_checksum == "cd" * 32
        after = await client.get(
            "/v1/catalog", params=params, headers={"If-None-Match": first.headers["etag"]}
        )
        assert after.status_code == 200
        assert after.headers["etag"] != first.headers["etag"]
        assert state.list_calls == asked + 1
    finally:
        state.checksum = original
        gateway.pages.invalidate()


async def test_bad_queries_and_missing_products_are_never_kept(
    client: httpx.AsyncClient, fake_services: Any
) -> None:
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    gateway.pages.invalidate()
    for _ in range(2):
        assert (await client.get("/v1/catalog", params={"limit": 0})).status_code == 422
        assert (await client.get("/v1/products/no-such-product")).status_code == 404
    assert len(gateway.pages) == 0


async def test_random_picks_are_never_cached(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/catalog", params={"limit": 2, "random": "true"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


async def test_a_product_is_cacheable_too(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/products/WW0001")
    assert first.headers["cache-control"] == "public, max-age=60"
    again = await client.get("/v1/products/WW0001", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_a_caller_with_a_token_still_gets_cacheable_catalog_pages(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.get("/v1/catalog", params={"limit": 2}, headers=auth())
    assert response.headers["cache-control"] == "public, max-age=60"
    me = await client.get("/v1/me", headers=auth())
    assert me.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("accept", "encoding"), [("br, gzip", "br"), ("gzip", "gzip"), ("br;q=0.5, gzip", "gzip")]
)
async def test_large_json_is_compressed_as_the_client_accepts(
    client: httpx.AsyncClient, accept: str, encoding: str
) -> None:
    plain = await client.get("/v1/catalog", params={"limit": 3}, headers={"Accept-Encoding": "identity"})
    assert len(plain.content) >= 1024
    assert "content-encoding" not in plain.headers
    response = await client.get("/v1/catalog", params={"limit": 3}, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    assert "Accept-Encoding" in response.headers["vary"]
    assert response.json() == plain.json()  # httpx decoded it
    assert int(response.headers["content-length"]) < len(plain.content)


async def test_compressed_bytes_decode_with_the_standard_decoders(client: httpx.AsyncClient) -> None:
    for encoding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
        async with client.stream(
            "GET", "/v1/catalog", params={"limit": 3}, headers={"Accept-Encoding": encoding}
        ) as r:
            raw = b"".join([chunk async for chunk in r.aiter_raw()])
        assert orjson.loads(decode(raw))["items"]


async def test_small_responses_are_sent_as_they_are(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/health", headers={"Accept-Encoding": "br, gzip"})
    assert len(response.content) < 1024
    assert "content-encoding" not in response.headers


async def test_in_test_environments_there_is_no_hsts_and_every_answer_has_a_csp(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/catalog", params={"limit": 1})
    assert "strict-transport-security" not in response.headers
    assert "default-src 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/v1/payments/payfast/return-bridge", "/v1/payments/payfast/cancel-bridge"])
async def test_bridge_pages_have_a_strict_csp(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, params={"reference": "5b3c8a52-7f0e-4d7e-9d1e-0c7f3a2b1c0d"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'none'" in csp
    assert "script-src" not in csp  # no scripts at all: the page is a meta refresh and a link
    assert "<script" not in response.text
    assert response.headers["cache-control"] == "no-store"


def staging_settings() -> dict[str, Any]:
    """Everything a non-dev environment insists on (values are never used to reach anything here)."""
    return {
        "environment": "staging",
        "auth_disable_verification": False,
        "openai_api_key": "sk-test-not-used",
        "payfast_merchant_id": "10000100",
        "payfast_merchant_key": "46f0cd694581a",
        "payfast_notify_url": "https://api.example.com/payments/payfast/itn",
        "payfast_return_url": "https://api.example.com/v1/payments/payfast/return-bridge",
        "payfast_cancel_url": "https://api.example.com/v1/payments/payfast/cancel-bridge",
        "clerk_issuer": "https://clerk.example.test",
        "clerk_jwks_url": "http://127.0.0.1:9/jwks.json",  # never fetched: no signed token is sent
        "secrets_master_key": base64.b64encode(os.urandom(32)).decode(),
    }


async def test_outside_dev_and_test_hsts_is_sent_and_unsigned_tokens_are_refused(
    app_client: Callable[..., Any], auth: Auth
) -> None:
    async with app_client(**staging_settings()) as http:
        bridge = await http.get("/v1/payments/payfast/return-bridge")
        assert bridge.headers["strict-transport-security"].startswith("max-age=")
        assert "default-src 'none'" in bridge.headers["content-security-policy"]
        refused = await http.get("/v1/me", headers=auth())  # an `alg: none` development token
        assert refused.status_code == 401
        assert "unsigned" in refused.headers["www-authenticate"]
        assert refused.headers["strict-transport-security"]
        assert (await http.get("/docs")).status_code == 404
