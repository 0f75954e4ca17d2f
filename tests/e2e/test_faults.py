"""Fault drills on a stack of its own: NATS, Postgres, Redis, a service or a slow dependency fails while
orders and top-ups flow, and afterwards nothing accepted is lost or applied twice.

Each drill ends with `assert_nothing_lost`: every order that got a 201 exists once, debited once, queued;
every ITN the simulator delivered credited once; every wallet equal to its ledger; every outbox published;
every event applied once by its consumer.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fault_stack import (
    CLIENT_TIMEOUT_SECONDS,
    FaultStack,
    Traffic,
    assert_nothing_lost,
    fault_stack,
    settle,
    until_answering,
)
from .helpers import ensure_sample_catalog, fund, pay_on_simulator, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

SHOPPERS = 3
FAULT_SECONDS = 3.0  # how long each outage lasts
LOAD_SECONDS = 1.5  # traffic before and after each outage


@pytest.fixture(scope="module")
def stack() -> Iterator[FaultStack]:
    # Not under pytest's basetemp: other pytest runs on the machine tighten its permissions (the Postgres
    # account could no longer reach its data on a restart) and prune old runs' folders.
    tmp = Path(tempfile.mkdtemp(prefix="yummi-faults-"))
    tmp.chmod(0o755)
    try:
        with fault_stack(tmp) as fs:
            ensure_sample_catalog(fs, tmp)
            yield fs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def products(stack: FaultStack) -> list[dict[str, Any]]:
    """The cheapest available products, so funded shoppers never run short."""
    items = stack.client.get("/v1/catalog", params={"limit": 200, "available": "true"}).json()["items"]
    return sorted(items, key=lambda p: p["price_minor"])[:6]


@pytest.fixture(scope="module")
def accepted() -> list[str]:
    """Every order id any drill got a 201 for: each later check covers the earlier drills' orders too."""
    return []


def shoppers(stack: FaultStack, drill: str, count: int = SHOPPERS) -> list[dict[str, str]]:
    """New shoppers, each funded by a real top-up (initiate, pay on the simulator, ITN, credit)."""
    headers = [stack.auth(f"{drill}_{n}", f"{drill}{n}@faults.example") for n in range(count)]
    for h in headers:
        fund(stack, h, 900_000)
    return headers


def run_traffic(stack: FaultStack, traffic: Traffic, fault: Any, recover: Any) -> None:
    stop = threading.Event()
    with traffic:
        stop.wait(LOAD_SECONDS)
        fault()
        stop.wait(FAULT_SECONDS)
        recover()
        stop.wait(LOAD_SECONDS)


def report(traffic: Traffic) -> str:
    return ", ".join(f"{kind}: {dict(traffic.statuses(kind))}" for kind in ("order", "initiate"))


def test_nats_restart_in_the_middle_of_orders_and_top_ups(
    stack: FaultStack, products: list[dict[str, Any]], accepted: list[str]
) -> None:
    traffic = Traffic(stack, shoppers(stack, "nats"), products)
    run_traffic(stack, traffic, lambda: stack.stop_server("nats"), lambda: stack.start_server("nats"))

    # NATS is not on any request's path: every request was answered as usual
    assert not traffic.unexpected({200, 201}), report(traffic)
    assert traffic.accepted_orders() and traffic.paid, report(traffic)
    accepted += traffic.accepted_orders()
    settle(stack)
    assert_nothing_lost(stack, accepted)


def test_payments_killed_while_itns_arrive_then_started_again(
    stack: FaultStack, products: list[dict[str, Any]], accepted: list[str]
) -> None:
    people = shoppers(stack, "kill")
    # Checkouts opened before the crash and paid during it: the simulator's ITNs meet a dead payments service.
    checkouts = []
    for headers in people:
        initiated = stack.client.post(
            "/v1/payments/payfast/initiate", json={"amount_minor": 7_500, "currency": "ZAR"}, headers=headers
        )
        assert initiated.status_code in (200, 201), initiated.text
        checkouts.append(initiated.json())

    def crash() -> None:
        stack.services.kill("payments")
        for checkout in checkouts:
            pay_on_simulator(stack, checkout)

    traffic = Traffic(stack, people, products)
    run_traffic(stack, traffic, crash, lambda: stack.services.restart("payments"))

    # Orders do not call payments (the debit is an event); top-ups do, and were refused with 503 meanwhile.
    assert not traffic.unexpected({200, 201, 503}), report(traffic)
    assert set(traffic.statuses("order")) == {201}, report(traffic)
    itns = httpx.get(f"{stack.payfast_url}/simulator/notifications", timeout=10).json()
    refs = {c["reference"] for c in checkouts}
    answered = [n["status_code"] for n in itns if n["reference"] in refs]
    assert 503 in answered, f"no ITN met the outage: {answered}"
    accepted += traffic.accepted_orders()
    settle(stack)
    assert_nothing_lost(stack, accepted)
    delivered = {d["reference"] for d in stack.deliveries() if d["delivered"]}
    assert refs <= delivered


def test_postgres_restarted_immediately_under_load(
    stack: FaultStack, products: list[dict[str, Any]], accepted: list[str]
) -> None:
    people = shoppers(stack, "pg")
    traffic = Traffic(stack, people, products)

    def restart() -> None:
        stack.start_server("postgres")
        until_answering(stack, people[0])

    run_traffic(stack, traffic, lambda: stack.stop_server("postgres", signal.SIGQUIT), restart)

    # During the outage requests fail with a clear 503 (Retry-After), never a 500 or a hang.
    failures = traffic.unexpected({200, 201})
    assert failures, "the outage was not noticed: " + report(traffic)
    assert not traffic.unexpected({200, 201, 503}), [
        (o.kind, o.status, o.body or o.error) for o in traffic.unexpected({200, 201, 503})
    ][:5]
    accepted += traffic.accepted_orders()
    settle(stack)
    assert_nothing_lost(stack, accepted)


def test_redis_vanishes_limits_fail_open_keys_and_ai_fail_closed_then_recover(
    stack: FaultStack, products: list[dict[str, Any]], accepted: list[str]
) -> None:
    [shopper] = shoppers(stack, "redis", 1)
    order = {"retailer": "woolworths", "items": [{"product_id": products[0]["product_id"], "quantity": 1}]}
    assert stack.client.get("/v1/ai/usage", headers=shopper).status_code == 200

    stack.stop_server("valkey", signal.SIGKILL)
    try:
        assert stack.client.get("/v1/catalog", params={"limit": 5}).status_code == 200
        assert stack.client.get("/v1/wallet/balance", headers=shopper).status_code == 200
        plain = stack.client.post("/v1/orders", json=order, headers=shopper)
        assert plain.status_code == 201, plain.text
        accepted.append(plain.json()["id"])
        keyed = stack.client.post(
            "/v1/orders", json=order, headers={**shopper, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert keyed.status_code == 503, keyed.text
        assert keyed.headers["Retry-After"]
        ai = stack.client.get("/v1/ai/usage", headers=shopper)
        assert ai.status_code == 503, ai.text
    finally:
        stack.start_server("valkey")

    key = str(uuid.uuid4())
    first = wait_for(
        lambda: stack.client.post("/v1/orders", json=order, headers={**shopper, "Idempotency-Key": key}),
        lambda r: r.status_code != 503,
    )
    assert first.status_code == 201, first.text
    again = stack.client.post("/v1/orders", json=order, headers={**shopper, "Idempotency-Key": key})
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    accepted.append(first.json()["id"])
    assert (
        wait_for(
            lambda: stack.client.get("/v1/ai/usage", headers=shopper), lambda r: r.status_code != 503
        ).status_code
        == 200
    )
    settle(stack)
    assert_nothing_lost(stack, accepted)


def test_a_frozen_catalog_costs_a_503_within_the_deadline_and_nothing_hangs(
    stack: FaultStack, products: list[dict[str, Any]], accepted: list[str]
) -> None:
    [shopper] = shoppers(stack, "slow", 1)
    order = {"retailer": "woolworths", "items": [{"product_id": products[1]["product_id"], "quantity": 1}]}
    calls = [
        ("GET", "/v1/catalog", {"params": {"q": "milk", "limit": 7}}),
        ("GET", f"/v1/products/{products[2]['id']}", {}),
        ("GET", "/v1/thin/catalog", {"params": {"limit": 3}}),
        ("POST", "/v1/orders", {"json": order, "headers": shopper}),
    ]

    def call(method: str, path: str, kwargs: dict[str, Any]) -> int:
        with httpx.Client(base_url=stack.url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
            return client.request(method, path, **kwargs).status_code  # a hang raises ReadTimeout

    stack.services.pause("catalog")
    try:
        with ThreadPoolExecutor(len(calls) * 2) as pool:
            answers = list(pool.map(lambda c: call(*c), calls * 2))
        assert answers == [503] * len(answers), answers
        # orders refused while the catalog could not price them are not stored
    finally:
        stack.services.resume("catalog")

    assert [call(*c) for c in calls[:3]] == [200, 200, 200]
    placed = stack.client.post("/v1/orders", json=order, headers=shopper)
    assert placed.status_code == 201, placed.text
    accepted.append(placed.json()["id"])
    settle(stack)
    assert_nothing_lost(stack, accepted)
    mine = stack.client.get("/v1/orders", headers=shopper).json()["items"]
    assert [o["id"] for o in mine] == [placed.json()["id"]], "an order refused with 503 was stored"
