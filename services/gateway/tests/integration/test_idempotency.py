"""Idempotency-Key: the first answer is kept per user and key and replayed; misuse is a problem."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
Auth = Callable[..., dict[str, str]]
ORDER = {"retailer": "woolworths", "items": [{"product_id": "WW0001", "quantity": 2}], "notes": "gate"}


def key() -> str:
    return f"order-{uuid.uuid4()}"


@pytest.fixture
def orders_state(fake_services: Any) -> Iterator[Any]:
    """The fake orders service's state, with its knobs put back after the test."""
    state = fake_services.state
    yield state
    state.place_order_delay = 0.0
    state.place_order_failures = 0


async def test_a_retry_gets_the_first_answer_replayed_and_places_nothing(
    client: httpx.AsyncClient, auth: Auth, orders_state: Any
) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    calls = orders_state.place_order_calls
    first = await client.post("/v1/orders", json=ORDER, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # The same body, keys in another order and spaced differently, is the same request.
    again = await client.post(
        "/v1/orders",
        content=b'{"notes": "gate",  "items": [{"quantity": 2, "product_id": "WW0001"}], '
        b'"retailer": "woolworths"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.json() == first.json()
    assert orders_state.place_order_calls == calls + 1


async def test_the_same_key_with_another_body_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    assert (await client.post("/v1/orders", json=ORDER, headers=headers)).status_code == 201
    other = {**ORDER, "notes": "another note"}
    response = await client.post("/v1/orders", json=other, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:yummi:problem:idempotency-key-reused"


async def test_the_same_key_on_another_endpoint_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    assert (await client.post("/v1/orders", json=ORDER, headers=headers)).status_code == 201
    initiate = {"amount_minor": 5000, "currency": "ZAR"}
    response = await client.post("/v1/payments/payfast/initiate", json=initiate, headers=headers)
    assert response.status_code == 422


async def test_keys_are_scoped_per_user(client: httpx.AsyncClient, auth: Auth) -> None:
    shared = key()
    mine = await client.post("/v1/orders", json=ORDER, headers={**auth(), "Idempotency-Key": shared})
    theirs = await client.post("/v1/orders", json=ORDER, headers={**auth(), "Idempotency-Key": shared})
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


async def test_ten_concurrent_requests_with_one_key_place_exactly_one_order(
    client: httpx.AsyncClient, auth: Auth, orders_state: Any
) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    calls = orders_state.place_order_calls
    orders_state.place_order_delay = 0.3  # the first is still running while the others arrive
    responses = await asyncio.gather(
        *(client.post("/v1/orders", json=ORDER, headers=headers) for _ in range(10))
    )
    assert orders_state.place_order_calls == calls + 1
    placed = [r for r in responses if r.status_code == 201]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(placed) + len(in_flight) == 10
    assert len({r.json()["id"] for r in placed}) == 1
    for response in in_flight:
        assert response.json()["type"] == "urn:yummi:problem:idempotency-key-in-flight"
        assert response.headers["retry-after"] == "1"
    orders_state.place_order_delay = 0.0
    replay = await client.post("/v1/orders", json=ORDER, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == placed[0].json()["id"]


async def test_a_failed_first_attempt_is_not_kept_so_a_retry_runs(
    client: httpx.AsyncClient, auth: Auth, orders_state: Any
) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    orders_state.place_order_failures = 3  # more than the channel's retries of UNAVAILABLE
    failed = await client.post("/v1/orders", json=ORDER, headers=headers)
    assert failed.status_code == 503
    orders_state.place_order_failures = 0
    retried = await client.post("/v1/orders", json=ORDER, headers=headers)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_the_key_goes_on_to_orders_so_a_retry_after_a_5xx_is_recognised_there(
    client: httpx.AsyncClient, auth: Auth, orders_state: Any
) -> None:
    # The first try may have committed the order before the 5xx: orders, not this record, must spot the retry.
    headers = {**auth(), "Idempotency-Key": key()}
    seen = len(orders_state.place_order_keys)
    orders_state.place_order_failures = 3
    assert (await client.post("/v1/orders", json=ORDER, headers=headers)).status_code == 503
    orders_state.place_order_failures = 0
    assert (await client.post("/v1/orders", json=ORDER, headers=headers)).status_code == 201
    assert (await client.post("/v1/orders", json=ORDER, headers=auth())).status_code == 201
    *keyed, plain = orders_state.place_order_keys[seen:]
    assert len(keyed) >= 2 and set(keyed) == {headers["Idempotency-Key"]}
    assert plain == ""


async def test_a_final_refusal_is_kept_and_replayed(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    unknown = {"items": [{"product_id": "no-such-product", "quantity": 1}]}
    first = await client.post("/v1/orders", json=unknown, headers=headers)
    assert first.status_code == 422
    again = await client.post("/v1/orders", json=unknown, headers=headers)
    assert again.status_code == 422
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json() == first.json()


@pytest.mark.parametrize("value", [b"", b"   ", b"x" * 256, b"tab\there", "café".encode()])
async def test_a_malformed_key_is_400(client: httpx.AsyncClient, auth: Auth, value: bytes) -> None:
    headers: dict[str, str | bytes] = {**auth(), "Idempotency-Key": value}
    response = await client.post("/v1/orders", json=ORDER, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_255_character_key_is_fine(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": "k" * 255}
    assert (await client.post("/v1/orders", json=ORDER, headers=headers)).status_code == 201


async def test_payfast_initiation_replays_the_same_reference(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": key()}
    body = {"amount_minor": 5000, "currency": "ZAR"}
    first = await client.post("/v1/payments/payfast/initiate", json=body, headers=headers)
    again = await client.post("/v1/payments/payfast/initiate", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["reference"] == first.json()["reference"]
    unkeyed = await client.post(
        "/v1/payments/payfast/initiate", json=body, headers=headers | {"Idempotency-Key": key()}
    )
    assert unkeyed.json()["reference"] != first.json()["reference"]


async def test_without_a_token_the_key_changes_nothing_and_the_answer_is_401(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/orders", json=ORDER, headers={"Idempotency-Key": key()})
    assert response.status_code == 401


async def test_other_routes_ignore_the_header(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": "x" * 300}  # malformed, but GET /v1/me does not read it
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
