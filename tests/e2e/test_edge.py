"""The edge against the real services: Idempotency-Key under concurrency; export, then erasure everywhere."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from yummi_devstack.pytest_plugin import SessionInfra

from .conftest import Stack
from .helpers import (
    available_products,
    balance,
    ensure_sample_catalog,
    fund,
    query,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.e2e
PERSONAL_ITN_FIELDS = ("name_first", "name_last", "email_address", "cell_number")


@pytest.fixture(scope="module")
def products(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    ensure_sample_catalog(stack, tmp_path_factory.mktemp("edge-catalog"))
    return available_products(stack, 3)


def rows(stack: Stack, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows straight from the stack's database, to check every schema after the events flowed."""
    return query(stack.database_url, sql, *args)


def test_ten_concurrent_orders_with_one_idempotency_key_place_exactly_one(
    stack: Stack, products: list[dict[str, Any]]
) -> None:
    shopper = {
        **stack.auth(f"idem_{uuid.uuid4().hex[:8]}", "idem@e2e.example"),
        "Idempotency-Key": str(uuid.uuid4()),
    }
    order = {"retailer": "woolworths", "items": [{"product_id": products[0]["product_id"], "quantity": 1}]}

    def place(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.url, timeout=30) as client:  # one connection each: truly concurrent
            return client.post("/v1/orders", json=order, headers=shopper)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(place, range(10)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses]
    placed = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(placed) == 1
    listed = stack.client.get("/v1/orders", headers=shopper).json()["items"]
    assert [o["id"] for o in listed] == list(placed)
    replay = stack.client.post("/v1/orders", json=order, headers=shopper)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] in placed


def forget_idempotency_record(redis_url: str, idempotency_key: str) -> None:
    """Delete the gateway's Redis record of a key, as an eviction or a Redis failover would."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    client = redis.Redis.from_url(redis_url)
    try:
        records = list(client.scan_iter(match=f"*idem:*:{digest}", count=1000))
        assert len(records) == 1, records
        client.delete(*records)
    finally:
        client.close()


def test_a_retry_after_the_gateway_forgot_the_key_places_nothing_new(
    stack: Stack, yummi_infra: SessionInfra, products: list[dict[str, Any]]
) -> None:
    shopper = stack.auth(f"forget_{uuid.uuid4().hex[:8]}", "forget@e2e.example")
    order = {"retailer": "woolworths", "items": [{"product_id": products[0]["product_id"], "quantity": 1}]}
    keyed = {**shopper, "Idempotency-Key": str(uuid.uuid4())}
    first = stack.client.post("/v1/orders", json=order, headers=keyed)
    assert first.status_code == 201, first.text
    forget_idempotency_record(yummi_infra.redis_url, keyed["Idempotency-Key"])
    again = stack.client.post("/v1/orders", json=order, headers=keyed)
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers  # answered by orders, not by the gateway's record
    assert again.json()["id"] == first.json()["id"]
    # Another body with the key, once the gateway no longer remembers it: orders refuses it.
    forget_idempotency_record(yummi_infra.redis_url, keyed["Idempotency-Key"])
    other = stack.client.post("/v1/orders", json={**order, "notes": "another note"}, headers=keyed)
    assert other.status_code == 422, other.text
    assert [e["field"] for e in other.json()["errors"]] == ["Idempotency-Key"]

    # Checkout: the retry finds the basket emptied and still gets the one order; nothing else is ordered.
    product = products[1]["product_id"]
    assert stack.client.put(f"/v1/basket/items/{product}", json={"quantity": 1}, headers=shopper).is_success
    checkout = {**shopper, "Idempotency-Key": str(uuid.uuid4())}
    placed = stack.client.post("/v1/basket/checkout", json={"notes": "gate"}, headers=checkout)
    assert placed.status_code == 201, placed.text
    forget_idempotency_record(yummi_infra.redis_url, checkout["Idempotency-Key"])
    retried = stack.client.post("/v1/basket/checkout", json={"notes": "gate"}, headers=checkout)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == placed.json()["id"]

    listed = stack.client.get("/v1/orders", headers=shopper).json()["items"]
    assert sorted(o["id"] for o in listed) == sorted([first.json()["id"], placed.json()["id"]])
    # Unfunded, so payments rejects both: no runner test later in the session finds them in the queue.


def test_export_gathers_every_context_and_erasure_reaches_every_schema(
    stack: Stack, products: list[dict[str, Any]]
) -> None:
    sub = f"erase_{uuid.uuid4().hex[:8]}"
    email = f"{sub}@e2e.example"
    user = stack.auth(sub, email)
    user_id = uuid.UUID(stack.client.get("/v1/me", headers=user).json()["id"])

    # Data in every context: a paid top-up (PayFast echoes the buyer's details), an order with a note, a
    # basket line, a stored AI key.
    reference = fund(stack, user, 50_000)
    product = products[0]
    note = "Flat 4, ring twice, ask for Thandi"
    order_body = {"retailer": "woolworths", "items": [{"product_id": product["product_id"], "quantity": 1}]}
    placed = stack.client.post("/v1/orders", json={**order_body, "notes": note}, headers=user)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    wait_for_status(stack, user, order_id, "queued")  # debited
    # Cancelled (and refunded) so no runner test later in the session finds it in the shared queue.
    assert stack.client.post(f"/v1/orders/{order_id}/cancel", headers=user).status_code == 200
    wait_for(lambda: balance(stack, user)["balance_minor"], lambda minor: minor == 50_000)
    basket = stack.client.put(f"/v1/basket/items/{product['product_id']}", json={"quantity": 2}, headers=user)
    assert basket.status_code == 200, basket.text
    credential = stack.client.post(
        "/v1/ai/credentials",
        json={"provider": "openai", "label": "my key", "api_key": "sk-test-" + "x" * 40},
        headers=user,
    )
    assert credential.status_code == 201, credential.text

    export = stack.client.get("/v1/me/export", headers=user)
    assert export.status_code == 200, export.text
    document = export.json()
    assert document["identity"]["email"] == email
    contexts = document["contexts"]
    assert set(contexts) >= {"orders", "payments", "ai"}
    assert note in export.text  # the order, with what the user wrote
    assert [p["reference"] for p in contexts["payments"]["payments"]] == [reference]
    assert contexts["payments"]["wallet"]["balance_minor"] == 50_000
    assert sorted(t["entry_type"] for t in contexts["payments"]["transactions"]) == [
        "credit",
        "debit",
        "refund",
    ]
    assert [c["label"] for c in contexts["ai"]["credentials"]] == ["my key"]
    assert "sk-test-" not in export.text  # the key itself never leaves the ai context

    erased = stack.client.delete("/v1/me", headers=user)
    assert erased.status_code == 202

    def erased_everywhere() -> dict[str, Any]:
        return {
            "identity": rows(
                stack, "SELECT email, clerk_user_id, erased_at FROM identity.users WHERE id = $1", user_id
            ),
            "notes": rows(stack, "SELECT notes FROM orders.orders WHERE user_id = $1", user_id),
            "basket": rows(stack, "SELECT 1 FROM orders.baskets WHERE user_id = $1", user_id),
            "itn": rows(
                stack, "SELECT last_itn_payload::text AS p FROM payments.payments WHERE user_id = $1", user_id
            ),
            "audit": rows(
                stack,
                "SELECT a.payload::text AS p FROM payments.itn_audit a"
                " JOIN payments.payments p ON p.id = a.payment_id WHERE p.user_id = $1",
                user_id,
            ),
            "credentials": rows(stack, "SELECT 1 FROM ai.api_credentials WHERE user_id = $1", user_id),
        }

    def done(state: dict[str, Any]) -> bool:
        return (
            state["identity"][0]["erased_at"] is not None
            and all(row["notes"] == "" for row in state["notes"])
            and not state["basket"]
            and not state["credentials"]
            and all(
                field not in row["p"]
                for row in state["itn"] + state["audit"]
                for field in PERSONAL_ITN_FIELDS
            )
        )

    state = wait_for(erased_everywhere, done, timeout=30)
    assert state["identity"][0]["email"] is None
    assert state["identity"][0]["clerk_user_id"].startswith("erased:")
    assert state["notes"] and state["itn"] and state["audit"]  # the records stay, without the personal data

    # The ledger stays whole for the accounts: its entries still add up to the wallet's balance.
    ledger = rows(
        stack,
        "SELECT w.balance_minor, coalesce(sum(t.amount_minor), 0) AS total, count(t.id) AS entries"
        " FROM payments.wallets w LEFT JOIN payments.wallet_transactions t ON t.user_id = w.user_id"
        " WHERE w.user_id = $1 GROUP BY w.balance_minor",
        user_id,
    )
    assert ledger[0]["entries"] == 3  # credit, debit, refund: nothing of the ledger is erased
    assert ledger[0]["total"] == ledger[0]["balance_minor"] == 50_000

    # The same Clerk account signing in again is a new user with nothing of the old one.
    again = stack.client.get("/v1/me", headers=user).json()
    assert again["id"] != str(user_id)
    assert again["wallet"]["balance_minor"] == 0
