"""Every bad input is a problem+json answer with X-Request-ID, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PROBLEM = "application/problem+json"
ORDER = {"retailer": "woolworths", "items": [{"product_id": "WW0001", "quantity": 1}]}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers.get("x-request-id")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


async def test_malformed_json_is_400(client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]) -> None:
    response = await client.post(
        "/v1/orders",
        content=b'{"retailer": "woolworths", "items": [',
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert_problem(response, 400)


async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await client.post(
        "/v1/orders",
        content=b"retailer=woolworths",
        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415)
    no_type = await client.post("/v1/orders", content=b'{"items": []}', headers=auth())
    assert_problem(no_type, 415)


async def test_a_body_over_64_kb_is_413(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    body = b'{"retailer": "' + b"x" * (65 * 1024) + b'", "items": []}'
    response = await client.post(
        "/v1/orders", content=body, headers={**auth(), "Content-Type": "application/json"}
    )
    assert_problem(response, 413)


async def test_a_chunked_body_over_64_kb_is_413_and_not_read_to_the_end(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 8 MB offered
            sent += 1
            yield b" " * 8192

    response = await client.post(
        "/v1/orders", content=chunks(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert_problem(response, 413)
    assert sent < 20


async def test_an_import_over_25_mb_is_413(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    headers = {**auth(email="admin@example.com"), "Content-Type": "application/json"}
    declared = await client.post(
        "/v1/admin/catalog/import", content=b"[" + b" " * (25 * 1024 * 1024) + b"]", headers=headers
    )
    assert_problem(declared, 413)


async def test_unknown_fields_are_422(client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]) -> None:
    response = await client.post("/v1/orders", json={**ORDER, "discount": 100}, headers=auth())
    body = assert_problem(response, 422)
    assert any(error["field"] == "discount" for error in body["errors"])  # type: ignore[union-attr]


@pytest.mark.parametrize("quantity", [0, -1, 100, "2", 1.5, True])
async def test_quantity_out_of_range_is_422(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]], quantity: object
) -> None:
    order = {"retailer": "woolworths", "items": [{"product_id": "WW0001", "quantity": quantity}]}
    body = assert_problem(await client.post("/v1/orders", json=order, headers=auth()), 422)
    assert body["errors"][0]["field"] == "items.0.quantity"  # type: ignore[index]


async def test_too_many_or_no_order_lines_is_422(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    many = {"items": [{"product_id": "WW0001", "quantity": 1}] * 101}
    assert_problem(await client.post("/v1/orders", json=many, headers=auth()), 422)
    assert_problem(await client.post("/v1/orders", json={"items": []}, headers=auth()), 422)


@pytest.mark.parametrize("limit", ["0", "501", "-5", "ten"])
async def test_catalog_limit_out_of_range_is_422(client: httpx.AsyncClient, limit: str) -> None:
    body = assert_problem(await client.get("/v1/catalog", params={"limit": limit}), 422)
    assert body["errors"][0]["field"] == "limit"  # type: ignore[index]


async def test_a_bad_cursor_is_422_from_the_service(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/catalog", params={"cursor": "garbage"}), 422)
    assert body["errors"] == [{"field": "cursor", "message": "malformed"}]


async def test_an_unknown_product_in_an_order_is_422_from_the_service(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    order = {"retailer": "woolworths", "items": [{"product_id": "NOPE", "quantity": 1}]}
    body = assert_problem(await client.post("/v1/orders", json=order, headers=auth()), 422)
    assert body["errors"] == [{"field": "items[0].product_id", "message": "unknown product"}]


async def test_no_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/me")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization", ["Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
async def test_a_bad_token_is_401_invalid_token(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/v1/me", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_non_admin_on_an_admin_route_is_403(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    assert_problem(await client.get("/v1/admin/catalog/source", headers=auth()), 403)
    assert_problem(
        await client.post(
            "/v1/admin/catalog/import", content=b"[]", headers={**auth(), "Content-Type": "application/json"}
        ),
        403,
    )


async def test_a_non_runner_cannot_claim_orders(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    assert_problem(await client.post("/v1/orders/next", headers=auth()), 403)


@pytest.mark.parametrize("order_id", ["00000000-0000-0000-0000-00000000dead", "not-a-uuid"])
async def test_an_unknown_order_is_404(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]], order_id: str
) -> None:
    assert_problem(await client.get(f"/v1/orders/{order_id}", headers=auth()), 404)


async def test_an_unknown_product_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/products/NOPE"), 404)


async def test_an_unknown_path_is_a_404_problem_with_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here", headers={"X-Request-ID": "probe-1"})
    assert_problem(response, 404)
    assert response.headers["x-request-id"] == "probe-1"


async def test_a_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/v1/catalog"), 405)


async def test_a_json_array_body_is_422(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    assert_problem(await client.post("/v1/orders", json=[1, 2], headers=auth()), 422)


async def test_an_unimplemented_rpc_is_501(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    assert_problem(await client.get("/v1/basket", headers=auth()), 501)


async def test_a_down_service_is_503(client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]) -> None:
    response = await client.get("/v1/ai/usage", headers=auth())
    assert_problem(response, 503)
    assert response.headers["retry-after"]


async def test_itn_with_the_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/payments/payfast/itn", json={"payment_status": "COMPLETE"}), 415)


@pytest.mark.parametrize("reference", ["not-a-uuid", "javascript:alert(1)"])
async def test_a_bridge_with_a_non_uuid_reference_is_400(client: httpx.AsyncClient, reference: str) -> None:
    assert_problem(
        await client.get("/v1/payments/payfast/return-bridge", params={"reference": reference}), 400
    )


@pytest.mark.parametrize("amount", [0, -100, "100", 1.5])
async def test_a_bad_top_up_amount_is_422(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]], amount: object
) -> None:
    response = await client.post(
        "/v1/payments/payfast/initiate", json={"amount_minor": amount}, headers=auth()
    )
    assert_problem(response, 422)


async def test_a_wrong_currency_is_422(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = await client.post(
        "/v1/payments/payfast/initiate", json={"amount_minor": 1000, "currency": "USD"}, headers=auth()
    )
    assert_problem(response, 422)
