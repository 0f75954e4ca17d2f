"""Health with a service down, the thin-slice switch, dev-auth gating, the identity store and erasure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from yummi_common.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
Auth = Callable[..., dict[str, str]]


async def test_health_with_a_service_down_is_200_degraded(client: httpx.AsyncClient) -> None:
    for path in ("/v1/health", "/v1/thin/health"):
        response = await client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        assert body["services"] == {"catalog": "ok", "orders": "ok", "payments": "ok", "ai": "down"}
        assert body["pending_counts"]["payments_pending"] == 2
        assert isinstance(body["pending_counts"]["orders_queued"], int)
        assert body["version"]


async def test_health_with_everything_down_still_answers_200(
    app_client: Callable[..., Any], fake_services: Any
) -> None:
    dead = fake_services.dead_addr
    async with app_client(catalog_grpc_addr=dead, orders_grpc_addr=dead, payments_grpc_addr=dead) as http:
        body = (await http.get("/v1/health")).json()
    assert set(body["services"].values()) == {"down"}
    assert body["pending_counts"] == {"orders_queued": None, "payments_pending": None}


async def test_thin_routes_are_404_when_the_thin_slice_is_off(app_client: Callable[..., Any]) -> None:
    async with app_client(thin_slice_enabled=False) as http:
        response = await http.get("/v1/thin/catalog")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert (await http.get("/v1/catalog")).status_code == 200


async def test_unsigned_tokens_are_401_unless_dev_auth_is_allowed(
    app_client: Callable[..., Any], auth: Auth
) -> None:
    async with app_client(auth_disable_verification=False) as http:
        response = await http.get("/v1/me", headers=auth())
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_changed_email_is_stored(client: httpx.AsyncClient, auth: Auth) -> None:
    first = (
        await client.get("/v1/me", headers=auth(sub="user_email_change", email="old@example.com"))
    ).json()
    second = (
        await client.get("/v1/me", headers=auth(sub="user_email_change", email="new@example.com"))
    ).json()
    assert second["id"] == first["id"]
    assert second["email"] == "new@example.com"
    async with _engine() as conn:
        stored = (
            await conn.execute(text("SELECT email FROM identity.users WHERE id = :id"), {"id": first["id"]})
        ).scalar()
    assert stored == "new@example.com"


async def test_export_gathers_every_context(
    client: httpx.AsyncClient, auth: Auth, fake_services: Any
) -> None:
    # ai is down in this app: an export must be complete, so it fails as a whole
    response = await client.get("/v1/me/export", headers=auth())
    assert response.status_code == 503


async def test_export_with_every_context_up(
    app_client: Callable[..., Any], auth: Auth, fake_services: Any
) -> None:
    async with app_client(ai_grpc_addr=fake_services.addr) as http:
        headers = auth(email="exported@example.com")
        await http.post(
            "/v1/orders", json={"items": [{"product_id": "WW0001", "quantity": 1}]}, headers=headers
        )
        response = await http.get("/v1/me/export", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["identity"]["email"] == "exported@example.com"
    assert body["contexts"] == {
        "orders": {"orders": 1},
        "payments": {"payments": []},
        "ai": {"credentials": []},
    }


async def test_erasure_forgets_the_email_and_emits_user_erased(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth(sub="user_to_erase", email="erase-me@example.com")
    user_id = (await client.get("/v1/me", headers=headers)).json()["id"]
    response = await client.delete("/v1/me", headers=headers)
    assert response.status_code == 202
    assert response.json() == {"id": user_id, "status": "erasure_requested"}
    async with _engine() as conn:
        row = (
            await conn.execute(
                text("SELECT email, clerk_user_id, erased_at, pseudonym FROM identity.users WHERE id = :id"),
                {"id": user_id},
            )
        ).one()
        events = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM identity.outbox"
                    " WHERE event_type = 'identity.user.erased' AND headers->>'ce-source' = 'yummi.gateway'"
                )
            )
        ).scalar()
    assert row.email is None
    assert row.erased_at is not None
    assert row.clerk_user_id == f"erased:{row.pseudonym}"
    assert events and events >= 1
    # signing in again starts a fresh user
    again = (await client.get("/v1/me", headers=headers)).json()
    assert again["id"] != user_id


class _engine:
    async def __aenter__(self) -> Any:
        self.engine = create_async_engine(Settings().database_url_for("gateway"))
        self.conn = await self.engine.connect()
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()
        await self.engine.dispose()


async def test_me_shows_no_wallet_when_payments_is_down(
    app_client: Callable[..., Any], auth: Auth, fake_services: Any
) -> None:
    async with app_client(payments_grpc_addr=fake_services.dead_addr) as http:
        response = await http.get("/v1/me", headers=auth())
    assert response.status_code == 200
    assert response.json()["wallet"] is None
