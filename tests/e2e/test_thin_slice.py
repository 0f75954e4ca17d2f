"""The thin slice and the user story through the gateway, with every service running as its own process."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_EMAIL, RUNNER_EMAIL, Clerk, Stack
from .helpers import query

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CATALOG_ITEMS = 400


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float = 20.0) -> Any:
    """Poll `fetch` until `done` holds (events cross NATS asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("catalog") / "catalog.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/generate_sample_catalog.py"),
            "--count",
            str(CATALOG_ITEMS),
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        check=True,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def imported(stack: Stack, catalog_file: bytes) -> dict[str, Any]:
    response = stack.client.post(
        "/v1/admin/catalog/import",
        content=catalog_file,
        headers={**stack.auth("admin_e2e", ADMIN_EMAIL), "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_gateway_health_reports_every_service(stack: Stack) -> None:
    response = stack.client.get("/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["services"] == {"catalog": "ok", "orders": "ok", "payments": "ok", "ai": "ok"}
    assert set(body["pending_counts"]) == {"orders_queued", "payments_pending"}
    assert response.headers["X-Request-ID"]


def test_admin_import_is_versioned_checksummed_and_idempotent(
    stack: Stack, imported: dict[str, Any], catalog_file: bytes
) -> None:
    assert imported["item_count"] == CATALOG_ITEMS
    assert imported["active"] is True
    assert re.fullmatch(r"[0-9a-f]{64}", imported["checksum_sha256"])

    again = stack.client.post(
        "/v1/admin/catalog/import",
        content=catalog_file,
        headers={**stack.auth("admin_e2e", ADMIN_EMAIL), "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert again.json()["dataset_id"] == imported["dataset_id"]

    source = stack.client.get("/v1/admin/catalog/source", headers=stack.auth("admin_e2e", ADMIN_EMAIL)).json()
    assert source["source"] == "postgres"
    assert source["dataset_version"] == imported["version"]
    assert source["item_count"] == CATALOG_ITEMS


def test_import_by_a_shopper_is_forbidden_and_a_bad_catalog_imports_nothing(
    stack: Stack, imported: dict[str, Any]
) -> None:
    forbidden = stack.client.post(
        "/v1/admin/catalog/import",
        content=b"[]",
        headers={**stack.auth(), "Content-Type": "application/json"},
    )
    assert forbidden.status_code == 403

    bad = stack.client.post(
        "/v1/admin/catalog/import",
        content=b'[{"product_id": "1", "title": "Milk", "price": 10}, {"product_id": "2", "price": -1}]',
        headers={**stack.auth("admin_e2e", ADMIN_EMAIL), "Content-Type": "application/json"},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert any(err.get("index") == 1 for err in bad.json()["errors"])
    source = stack.client.get("/v1/admin/catalog/source", headers=stack.auth("admin_e2e", ADMIN_EMAIL)).json()
    assert source["dataset_version"] == imported["version"]


def test_catalog_pages_cover_every_product_once(stack: Stack, imported: dict[str, Any]) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 150}
        if cursor:
            params["cursor"] = cursor
        page = stack.client.get("/v1/catalog", params=params).json()
        assert page["dataset_version"] == imported["version"]
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == CATALOG_ITEMS == len(set(seen))


def test_catalog_filters_random_and_thin_list(stack: Stack, imported: dict[str, Any]) -> None:
    random_page = stack.client.get("/v1/catalog", params={"limit": 20, "random": "true"}).json()
    assert len(random_page["items"]) == 20
    product = random_page["items"][0]
    assert set(product) >= {
        "id",
        "retailer",
        "product_id",
        "catalog_ref_id",
        "title",
        "url",
        "image_url",
        "price_minor",
        "currency",
        "category",
        "available",
        "attributes",
        "dataset_version",
    }
    assert isinstance(product["price_minor"], int) and product["currency"] == "ZAR"

    woolworths = stack.client.get("/v1/catalog", params={"limit": 50, "retailer": "woolworths"}).json()
    assert woolworths["items"] and all(p["retailer"] == "woolworths" for p in woolworths["items"])
    available = stack.client.get("/v1/catalog", params={"limit": 500, "available": "true"}).json()
    assert all(p["available"] for p in available["items"])

    thin = stack.client.get("/v1/thin/catalog", params={"limit": 5})
    assert thin.status_code == 200
    assert isinstance(thin.json(), list) and len(thin.json()) == 5

    for bad_limit in (0, 501):
        response = stack.client.get("/v1/catalog", params={"limit": bad_limit})
        assert response.status_code == 422


def test_product_by_uuid_and_by_retailer_id(stack: Stack, imported: dict[str, Any]) -> None:
    product = stack.client.get("/v1/catalog", params={"limit": 1}).json()["items"][0]
    by_id = stack.client.get(f"/v1/products/{product['id']}")
    by_retailer_id = stack.client.get(f"/v1/products/{product['product_id']}")
    assert by_id.status_code == by_retailer_id.status_code == 200
    assert by_id.json() == by_retailer_id.json() == product
    assert stack.client.get("/v1/products/does-not-exist").status_code == 404


def _available_products(stack: Stack, count: int) -> list[dict[str, Any]]:
    items = stack.client.get("/v1/catalog", params={"limit": 100, "available": "true"}).json()["items"]
    return items[:count]


def _top_up(stack: Stack, headers: dict[str, str], amount_minor: int) -> str:
    """Initiate, pay on the simulator's hosted page, let it post the signed ITN; return the reference."""
    initiated = stack.client.post(
        "/v1/payments/payfast/initiate",
        json={"amount_minor": amount_minor, "currency": "ZAR"},
        headers=headers,
    )
    assert initiated.status_code in (200, 201), initiated.text
    body = initiated.json()
    fields = body["fields"]
    assert list(fields)[-1] == "signature"
    with httpx.Client(timeout=30) as browser:
        page = browser.post(body["action_url"], data=fields)
        assert page.status_code == 200, page.text
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        assert pay_path, page.text
        paid = browser.post(stack.payfast_url + pay_path.group(1), data={"payment_status": "COMPLETE"})
        assert paid.status_code in (200, 303), paid.text
    return str(body["reference"])


def test_user_story_order_rejected_without_funds_then_paid_claimed_and_completed(
    stack: Stack, imported: dict[str, Any]
) -> None:
    shopper = stack.auth("shopper_story", "shopper@e2e.example")
    me = stack.client.get("/v1/me", headers=shopper)
    assert me.status_code == 200
    assert me.json()["wallet"]["balance_minor"] == 0

    lines = _available_products(stack, 3)
    order_body = {
        "retailer": "woolworths",
        "items": [{"product_id": p["product_id"], "quantity": i + 1} for i, p in enumerate(lines)],
        "notes": "leave at the gate",
    }
    expected_total = sum(p["price_minor"] * (i + 1) for i, p in enumerate(lines))

    # With an empty wallet the saga rejects the order.
    first = stack.client.post("/v1/orders", json=order_body, headers=shopper)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "pending_payment"
    assert first.json()["total_minor"] == expected_total
    rejected = wait_for(
        lambda: stack.client.get(f"/v1/orders/{first.json()['id']}", headers=shopper).json(),
        lambda order: order["status"] != "pending_payment",
    )
    assert rejected["status"] == "rejected"
    assert [e["type"] for e in rejected["events"]][:1] == ["order.placed"]

    # Top up through the PayFast simulator: a signed ITN credits the wallet exactly once.
    reference = _top_up(stack, shopper, expected_total + 10_000)
    status = wait_for(
        lambda: stack.client.get(
            "/v1/payments/payfast/status", params={"reference": reference}, headers=shopper
        ),
        lambda r: r.status_code == 200 and r.json()["wallet_credited"],
    ).json()
    assert status["status"] == "complete"
    balance = stack.client.get("/v1/wallet/balance", headers=shopper).json()
    assert balance["balance_minor"] == expected_total + 10_000
    assert [t["entry_type"] for t in balance["transactions"]] == ["credit"]

    # Now the order is debited and queued.
    second = stack.client.post("/v1/orders", json=order_body, headers=shopper)
    assert second.status_code == 201
    order_id = second.json()["id"]
    queued = wait_for(
        lambda: stack.client.get(f"/v1/orders/{order_id}", headers=shopper).json(),
        lambda order: order["status"] != "pending_payment",
    )
    assert queued["status"] == "queued"
    assert stack.client.get("/v1/wallet/balance", headers=shopper).json()["balance_minor"] == 10_000

    # A runner claims it under a lease and completes it; a shopper may not claim. The queue is shared with
    # whatever else this test session queued, so the runner works through it oldest first until ours comes up.
    runner = stack.auth("runner_e2e", RUNNER_EMAIL)
    assert stack.client.post("/v1/orders/next", headers=shopper).status_code == 403
    claimed = None
    for _ in range(1000):
        response = stack.client.post("/v1/orders/next", headers=runner)
        assert response.status_code == 200, response.text
        if response.json()["id"] == order_id:
            claimed = response.json()
            break
        ack_other = stack.client.post(
            f"/v1/orders/{response.json()['id']}/ack", json={"outcome": "completed"}, headers=runner
        )
        assert ack_other.status_code == 200
    assert claimed is not None and claimed["lease_expires_at"]
    heartbeat = stack.client.post(f"/v1/orders/{order_id}/heartbeat", headers=runner)
    assert heartbeat.status_code == 200
    ack = stack.client.post(
        f"/v1/orders/{order_id}/ack",
        json={"outcome": "completed", "retailer_reference": "WW-123"},
        headers=runner,
    )
    assert ack.status_code == 200, ack.text
    done = stack.client.get(f"/v1/orders/{order_id}", headers=shopper).json()
    assert done["status"] == "completed"
    assert done["retailer_reference"] == "WW-123"
    assert [e["type"] for e in done["events"]] == [
        "order.placed",
        "order.queued",
        "order.claimed",
        "order.completed",
    ]
    again = stack.client.post(f"/v1/orders/{order_id}/ack", json={"outcome": "failed"}, headers=runner)
    assert again.status_code == 409

    # Another shopper cannot see it.
    stranger = stack.auth("stranger", "stranger@e2e.example")
    assert stack.client.get(f"/v1/orders/{order_id}", headers=stranger).status_code == 404


def test_order_bad_input_is_a_problem_and_stores_nothing(stack: Stack, imported: dict[str, Any]) -> None:
    shopper = stack.auth("shopper_bad", "bad@e2e.example")
    product = _available_products(stack, 1)[0]
    cases = [
        ({"retailer": "woolworths", "items": [{"product_id": product["product_id"], "quantity": 0}]}, 422),
        ({"retailer": "woolworths", "items": [{"product_id": product["product_id"], "quantity": 100}]}, 422),
        ({"retailer": "woolworths", "items": [{"product_id": "no-such-product", "quantity": 1}]}, 422),
        ({"retailer": "woolworths", "items": [], "extra": 1}, 422),
    ]
    for body, status in cases:
        response = stack.client.post("/v1/orders", json=body, headers=shopper)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    malformed = stack.client.post(
        "/v1/orders", content=b"{not json", headers={**shopper, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    wrong_type = stack.client.post(
        "/v1/orders", content=b"a=b", headers={**shopper, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert stack.client.post("/v1/orders", json={"retailer": "x", "items": []}).status_code == 401
    assert stack.client.get("/v1/orders", headers=shopper).json()["items"] == []


def test_user_story_signed_in_with_a_clerk_rs256_token(
    stack: Stack, clerk: Clerk, imported: dict[str, Any]
) -> None:
    """The whole story through a gateway that verifies Clerk tokens (RS256, local JWKS), never dev tokens."""
    http = clerk.client
    sub, email = f"user_clerk_{uuid.uuid4().hex[:12]}", "clerk-story@e2e.example"
    shopper = clerk.auth(sub, email)
    assert (
        http.get("/v1/me", headers=stack.auth(sub, email)).status_code == 401
    )  # a dev token is refused here
    forged = clerk.token(sub, email, iss="https://evil.example")
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401

    me = http.get("/v1/me", headers=shopper)
    assert me.status_code == 200, me.text
    assert (me.json()["clerk_user_id"], me.json()["email"]) == (sub, email)
    assert me.json()["wallet"]["balance_minor"] == 0

    # Top-up: the simulator's hosted page, then its signed ITN, credited exactly once.
    initiated = http.post(
        "/v1/payments/payfast/initiate", json={"amount_minor": 40_000, "currency": "ZAR"}, headers=shopper
    )
    assert initiated.status_code in (200, 201), initiated.text
    reference = str(initiated.json()["reference"])
    with httpx.Client(timeout=30) as browser:
        page = browser.post(initiated.json()["action_url"], data=initiated.json()["fields"])
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        assert pay_path, page.text
        paid = browser.post(stack.payfast_url + pay_path.group(1), data={"payment_status": "COMPLETE"})
        assert paid.status_code in (200, 303), paid.text
    wait_for(
        lambda: http.get("/v1/payments/payfast/status", params={"reference": reference}, headers=shopper),
        lambda r: r.status_code == 200 and r.json()["wallet_credited"],
    )
    itns = httpx.get(f"{stack.payfast_url}/simulator/notifications", timeout=10).json()
    assert [n["status_code"] for n in itns if n["reference"] == reference] == [200]
    wallet = http.get("/v1/wallet/balance", headers=shopper).json()
    assert wallet["balance_minor"] == 40_000
    assert [(t["entry_type"], t["amount_minor"]) for t in wallet["transactions"]] == [("credit", 40_000)]

    # Browse and search.
    page_one = http.get("/v1/catalog", params={"limit": 20, "available": "true"}, headers=shopper).json()
    product = min(page_one["items"], key=lambda p: p["price_minor"])
    word = next(w for w in product["title"].split() if len(w) > 3)
    found = http.get("/v1/catalog", params={"q": word, "limit": 50}, headers=shopper)
    assert found.status_code == 200, found.text
    assert product["id"] in [p["id"] for p in found.json()["items"]]

    # An order sent twice with one Idempotency-Key is placed once, debited once, queued.
    order_body = {"retailer": "woolworths", "items": [{"product_id": product["product_id"], "quantity": 2}]}
    key = str(uuid.uuid4())
    first = http.post("/v1/orders", json=order_body, headers={**shopper, "Idempotency-Key": key})
    again = http.post("/v1/orders", json=order_body, headers={**shopper, "Idempotency-Key": key})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    order_id = first.json()["id"]
    assert again.json()["id"] == order_id
    assert [o["id"] for o in http.get("/v1/orders", headers=shopper).json()["items"]] == [order_id]
    queued = wait_for(
        lambda: http.get(f"/v1/orders/{order_id}", headers=shopper).json(),
        lambda order: order["status"] != "pending_payment",
    )
    assert queued["status"] == "queued"
    wallet = http.get("/v1/wallet/balance", headers=shopper).json()
    assert wallet["balance_minor"] == 40_000 - 2 * product["price_minor"]
    assert sorted(t["entry_type"] for t in wallet["transactions"]) == ["credit", "debit"]

    # A runner (also signed in with Clerk) claims it under a lease and completes it.
    runner = clerk.auth("runner_clerk_e2e", RUNNER_EMAIL)
    claimed = None
    for _ in range(1000):
        response = http.post("/v1/orders/next", headers=runner)
        assert response.status_code == 200, response.text
        if response.json()["id"] == order_id:
            claimed = response.json()
            break
        other = http.post(
            f"/v1/orders/{response.json()['id']}/ack", json={"outcome": "completed"}, headers=runner
        )
        assert other.status_code == 200, other.text
    assert claimed is not None
    ack = http.post(
        f"/v1/orders/{order_id}/ack",
        json={"outcome": "completed", "retailer_reference": "WW-CLERK"},
        headers=runner,
    )
    assert ack.status_code == 200, ack.text
    assert http.get(f"/v1/orders/{order_id}", headers=shopper).json()["status"] == "completed"

    # Export everything held about the shopper, then erase it.
    export = http.get("/v1/me/export", headers=shopper)
    assert export.status_code == 200, export.text
    contexts = export.json()["contexts"]
    assert [p["reference"] for p in contexts["payments"]["payments"]] == [reference]
    assert order_id in export.text
    erased = http.delete("/v1/me", headers=shopper)
    assert erased.status_code == 202, erased.text
    user_id = me.json()["id"]
    wait_for(
        lambda: query(
            stack.database_url,
            "SELECT email, erased_at FROM identity.users WHERE id = $1",
            uuid.UUID(user_id),
        ),
        lambda rows: rows and rows[0]["erased_at"] is not None and rows[0]["email"] != email,
    )
