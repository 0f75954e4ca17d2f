"""Clerk webhooks: Svix signatures checked, users created/updated, deletion erases."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from svix.webhooks import Webhook

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
KEY = b"clerk-webhook-signing-key-32byte"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def signed(event: dict[str, Any], *, key: bytes = KEY) -> tuple[bytes, dict[str, str]]:
    """A delivery signed by the svix library itself, as Clerk sends them."""
    body = orjson.dumps(event)
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(tz=UTC)
    signature = Webhook(key).sign(msg_id, now, body.decode())
    headers = {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": signature,
    }
    return body, headers


def user_event(kind: str, clerk_id: str, email: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": clerk_id, "object": "user"}
    if email:
        data |= {
            "primary_email_address_id": "idn_1",
            "email_addresses": [{"id": "idn_1", "email_address": email}],
        }
    return {"type": kind, "object": "event", "data": data}


async def test_user_created_then_deleted_creates_then_erases(app_client: Callable[..., Any]) -> None:
    clerk_id = f"user_{uuid.uuid4().hex[:10]}"
    async with app_client(clerk_webhook_secret=SECRET) as http:
        body, headers = signed(user_event("user.created", clerk_id, "Hook@Example.com"))
        created = await http.post("/v1/webhooks/clerk", content=body, headers=headers)
        assert created.status_code == 200
        assert created.json() == {"status": "processed"}
        repeat = await http.post("/v1/webhooks/clerk", content=body, headers=headers)
        assert repeat.status_code == 200  # Svix retries are harmless
        assert repeat.json() == {"status": "duplicate"}

        from yummi_gateway.adapters.users import get_user_by_clerk_id

        gateway = http._transport.app.state.gateway  # type: ignore[attr-defined]
        async with gateway.uow() as uow:
            row = await get_user_by_clerk_id(uow.session, clerk_user_id=clerk_id)
        assert row.email == "hook@example.com"

        body, headers = signed(user_event("user.deleted", clerk_id))
        assert (await http.post("/v1/webhooks/clerk", content=body, headers=headers)).status_code == 200
        async with gateway.uow() as uow:
            assert await get_user_by_clerk_id(uow.session, clerk_user_id=clerk_id) is None


async def test_a_badly_signed_webhook_is_401_and_changes_nothing(app_client: Callable[..., Any]) -> None:
    async with app_client(clerk_webhook_secret=SECRET) as http:
        body, headers = signed(user_event("user.created", "user_forged", "x@example.com"), key=b"wrong-key")
        response = await http.post("/v1/webhooks/clerk", content=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_webhooks_are_503_when_no_secret_is_configured(app_client: Callable[..., Any]) -> None:
    async with app_client(clerk_webhook_secret=None) as http:
        body, headers = signed(user_event("user.created", "user_x", "x@example.com"))
        assert (await http.post("/v1/webhooks/clerk", content=body, headers=headers)).status_code == 503


async def test_other_event_types_are_acknowledged_and_ignored(app_client: Callable[..., Any]) -> None:
    async with app_client(clerk_webhook_secret=SECRET) as http:
        body, headers = signed({"type": "session.created", "data": {"id": "sess_1"}})
        response = await http.post("/v1/webhooks/clerk", content=body, headers=headers)
        assert response.json() == {"status": "ignored"}


async def test_a_replayed_svix_id_changes_nothing(app_client: Callable[..., Any]) -> None:
    clerk_id = f"user_{uuid.uuid4().hex[:10]}"
    async with app_client(clerk_webhook_secret=SECRET) as http:
        old_body, old_headers = signed(user_event("user.updated", clerk_id, "old@example.com"))
        first = await http.post("/v1/webhooks/clerk", content=old_body, headers=old_headers)
        assert first.status_code == 200
        new_body, new_headers = signed(user_event("user.updated", clerk_id, "new@example.com"))
        second = await http.post("/v1/webhooks/clerk", content=new_body, headers=new_headers)
        assert second.status_code == 200

        replay = await http.post("/v1/webhooks/clerk", content=old_body, headers=old_headers)

        assert replay.status_code == 200
        assert replay.json() == {"status": "duplicate"}
        from yummi_gateway.adapters.users import get_user_by_clerk_id

        gateway = http._transport.app.state.gateway  # type: ignore[attr-defined]
        async with gateway.uow() as uow:
            row = await get_user_by_clerk_id(uow.session, clerk_user_id=clerk_id)
        assert row.email == "new@example.com"
