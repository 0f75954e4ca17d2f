"""The thin slice through the gateway: catalog, orders, runner queue, wallet, PayFast, admin import."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PRODUCT_FIELDS = {
    "id", "retailer", "product_id", "catalog_ref_id", "title", "url", "image_url", "price_minor", "currency",
    "category", "available", "attributes", "dataset_version",
}  # fmt: skip
ORDER_FIELDS = {
    "id",
    "status",
    "retailer",
    "items",
    "total_minor",
    "currency",
    "notes",
    "created_at",
    "updated_at",
}
Auth = Callable[..., dict[str, str]]


async def test_catalog_page_has_the_contract_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/catalog", params={"limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next_cursor", "dataset_version"}
    assert body["next_cursor"] == "page2"
    assert body["dataset_version"] == "v1"
    product = body["items"][0]
    assert set(product) == PRODUCT_FIELDS
    assert product["attributes"] == {"brand": "Yummi", "size": "100g", "nested": {"a": [1, 2]}}
    assert product["image_url"] is None


async def test_catalog_query_reaches_the_catalog_service(
    client: httpx.AsyncClient, fake_services: object
) -> None:
    await client.get(
        "/v1/catalog",
        params={
            "available": "true",
            "q": " milk ",
            "category": "dairy",
            "random": "1",
            "retailer": "woolworths",
        },
    )
    sent = fake_services.state.last_list_request  # type: ignore[attr-defined]
    assert sent.HasField("available") and sent.available
    assert (sent.q, sent.category, sent.random, sent.retailer, sent.limit) == (
        "milk",
        "dairy",
        True,
        "woolworths",
        50,
    )
    await client.get("/v1/catalog")
    assert not fake_services.state.last_list_request.HasField("available")  # type: ignore[attr-defined]


async def test_unavailable_products_are_listed_unless_available_is_asked(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/v1/catalog")).json()["items"]
    assert any(not p["available"] for p in everything)
    available = (await client.get("/v1/catalog", params={"available": "true"})).json()["items"]
    assert all(p["available"] for p in available)


async def test_thin_catalog_is_a_bare_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/thin/catalog", params={"limit": 3})
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    assert set(response.json()[0]) == PRODUCT_FIELDS


async def test_a_product_is_found_by_uuid_or_retailer_id(client: httpx.AsyncClient) -> None:
    by_ref = await client.get("/v1/products/WW0002")
    assert by_ref.status_code == 200
    by_id = await client.get(f"/v1/products/{by_ref.json()['id']}")
    assert by_id.json() == by_ref.json()


async def test_me_creates_the_user_once_and_shows_the_wallet(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth(sub="user_me_test", email="me@example.com")
    first = await client.get("/v1/me", headers=headers)
    assert first.status_code == 200
    body = first.json()
    uuid.UUID(body["id"])
    assert body["clerk_user_id"] == "user_me_test"
    assert body["email"] == "me@example.com"
    assert body["is_admin"] is False
    assert body["wallet"] == {"balance_minor": 5000, "currency": "ZAR", "debits_blocked": False}
    assert first.headers["cache-control"] == "no-store"
    second = await client.get("/v1/me", headers=headers)
    assert second.json()["id"] == body["id"]


async def test_admin_comes_from_the_email_list_or_the_role_claim(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    assert (await client.get("/v1/me", headers=auth(email="admin@example.com"))).json()["is_admin"] is True
    claimed = auth(email="boss@example.com", metadata={"role": "admin"})
    assert (await client.get("/v1/me", headers=claimed)).json()["is_admin"] is True


async def test_place_get_list_and_cancel_an_order(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth()
    order = {
        "retailer": "woolworths",
        "items": [{"product_id": "WW0001", "quantity": 2}],
        "notes": "ring twice",
    }
    placed = await client.post("/v1/orders", json=order, headers=headers)
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert ORDER_FIELDS <= set(body)
    assert body["items"] == [
        {
            "product_id": "WW0001",
            "title": "Product 1",
            "quantity": 2,
            "unit_price_minor": 1001,
            "line_total_minor": 2002,
        }
    ]
    assert body["total_minor"] == 2002
    assert body["created_at"].endswith("Z")

    fetched = (await client.get(f"/v1/orders/{body['id']}", headers=headers)).json()
    assert fetched["events"][0] == {
        "type": "placed",
        "payload": {"by": "user"},
        "created_at": fetched["created_at"],
    }

    listed = (await client.get("/v1/orders", headers=headers)).json()
    assert [o["id"] for o in listed["items"]] == [body["id"]]
    assert listed["next_cursor"] is None

    other_user = await client.get(f"/v1/orders/{body['id']}", headers=auth())
    assert other_user.status_code == 404

    cancelled = await client.post(f"/v1/orders/{body['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/v1/orders/{body['id']}/cancel", headers=headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_a_runner_claims_heartbeats_and_acks(client: httpx.AsyncClient, auth: Auth) -> None:
    runner = auth(email="runner@example.com")
    while (await client.post("/v1/orders/next", headers=runner)).status_code == 200:
        pass  # drain what earlier tests queued
    assert (await client.post("/v1/orders/next", headers=runner)).status_code == 204

    shopper = auth()
    order = {"items": [{"product_id": "WW0002", "quantity": 1}]}
    placed = (await client.post("/v1/orders", json=order, headers=shopper)).json()
    claimed = await client.post("/v1/orders/next", headers=runner)
    assert claimed.status_code == 200
    assert claimed.json()["id"] == placed["id"]
    assert claimed.json()["lease_expires_at"]

    beat = await client.post(f"/v1/orders/{placed['id']}/heartbeat", headers=runner)
    assert set(beat.json()) == {"lease_expires_at"}

    ack = await client.post(
        f"/v1/orders/{placed['id']}/ack",
        json={"outcome": "completed", "retailer_reference": "WW-123"},
        headers=runner,
    )
    assert ack.status_code == 200
    assert ack.json()["status"] == "completed"
    assert ack.json()["retailer_reference"] == "WW-123"
    bad = await client.post(f"/v1/orders/{placed['id']}/ack", json={"outcome": "maybe"}, headers=runner)
    assert bad.status_code == 422


async def test_wallet_balance_lists_transactions(client: httpx.AsyncClient, auth: Auth) -> None:
    body = (await client.get("/v1/wallet/balance", headers=auth())).json()
    assert body["balance_minor"] == 5000
    assert body["transactions"][0]["entry_type"] == "credit"
    assert body["next_cursor"] is None


async def test_initiate_returns_the_signed_fields_in_order(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.post("/v1/payments/payfast/initiate", json={"amount_minor": 5000}, headers=auth())
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "sandbox"
    assert list(body["fields"]) == ["merchant_id", "amount", "signature"]
    assert body["fields"]["amount"] == "50.00"


async def test_itn_from_payfast_behind_a_trusted_proxy_is_accepted(
    client: httpx.AsyncClient, fake_services: object
) -> None:
    response = await client.post(
        "/payments/payfast/itn",
        content=b"m_payment_id=1&payment_status=COMPLETE",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": "6.6.6.6, 197.97.145.144",
        },
    )
    assert response.status_code == 200
    assert response.text == "OK"
    call = fake_services.state.itn_calls[-1]  # type: ignore[attr-defined]
    assert call.raw_body == b"m_payment_id=1&payment_status=COMPLETE"
    assert call.client_ip == "197.97.145.144"


async def test_itn_that_fails_a_check_is_400(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    not_complete = await client.post(
        "/v1/payments/payfast/itn",
        content=b"payment_status=FAILED",
        headers={**form, "X-Forwarded-For": "197.97.145.144"},
    )
    assert not_complete.status_code == 400
    wrong_host = await client.post(
        "/v1/payments/payfast/itn", content=b"payment_status=COMPLETE", headers=form
    )
    assert wrong_host.status_code == 400
    assert wrong_host.headers["content-type"].startswith("application/problem+json")


async def test_bridge_page_links_back_to_the_app_with_the_reference(client: httpx.AsyncClient) -> None:
    reference = str(uuid.uuid4())
    response = await client.get("/v1/payments/payfast/return-bridge", params={"reference": reference})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"yummi://payfast/return?reference={reference}" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    cancel = await client.get("/v1/payments/payfast/cancel-bridge")
    assert 'url=yummi://payfast/cancel"' in cancel.text


async def test_admin_import_answers_201_then_200_when_already_imported(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    admin = {**auth(email="admin@example.com"), "Content-Type": "application/json"}
    catalog = orjson.dumps(
        {"items": [{"product_id": "A1", "title": "Milk", "price": "19.99"}], "note": uuid.uuid4().hex}
    )
    first = await client.post("/v1/admin/catalog/import", content=catalog, headers=admin)
    assert first.status_code == 201, first.text
    body = first.json()
    assert {"dataset_id", "version", "item_count", "checksum_sha256", "active"} <= set(body)
    assert body["active"] is True
    second = await client.post("/v1/admin/catalog/import", content=catalog, headers=admin)
    assert second.status_code == 200
    assert second.json()["checksum_sha256"] == body["checksum_sha256"]


async def test_admin_import_with_bad_items_is_422_listing_each(client: httpx.AsyncClient, auth: Auth) -> None:
    admin = {**auth(email="admin@example.com"), "Content-Type": "application/json"}
    catalog = orjson.dumps(
        [{"product_id": "A1", "price": 1}, {"product_id": "A2"}, {"product_id": "A3", "price": 2}, 7]
    )
    response = await client.post("/v1/admin/catalog/import", content=catalog, headers=admin)
    assert response.status_code == 422
    assert [e["index"] for e in response.json()["errors"]] == [1, 3]
    skipped = await client.post(
        "/v1/admin/catalog/import", params={"skip_invalid": "true"}, content=catalog, headers=admin
    )
    assert skipped.status_code in (200, 201)
    assert [s["index"] for s in skipped.json()["skipped"]] == [1, 3]


async def test_admin_catalog_source(client: httpx.AsyncClient, auth: Auth) -> None:
    body = (await client.get("/v1/admin/catalog/source", headers=auth(email="admin@example.com"))).json()
    assert body["source"] == "postgres"
    assert body["activated_at"].endswith("Z")


async def test_cors_preflight_allows_the_configured_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    ok = await client.options("/v1/orders", headers={"Origin": "https://app.example.com", **preflight})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers.get("x-request-id")
    evil = await client.options("/v1/orders", headers={"Origin": "https://evil.example.com", **preflight})
    assert "access-control-allow-origin" not in evil.headers


async def test_openapi_builds(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/catalog" in paths and "/v1/orders/{order_id}" in paths


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/v1/products/WW0001")
    text = (await client.get("/metrics")).text
    assert 'route="/v1/products/{product_id}"' in text
    assert "yummi_gateway_http_request_duration_seconds_bucket" in text
