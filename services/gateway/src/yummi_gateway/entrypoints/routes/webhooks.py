"""Clerk webhooks (Svix-signed): user.created / user.updated keep the email, user.deleted erases."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from yummi_common.logging import get_logger
from yummi_gateway.adapters.clerk_webhooks import InvalidWebhook, verify_clerk_webhook
from yummi_gateway.entrypoints.deps import GatewayDep, is_json_media_type
from yummi_gateway.entrypoints.schemas import PROBLEM
from yummi_gateway.responses import JSONBytes
from yummi_gateway.service_layer.users import (
    claim_webhook_delivery,
    erase_clerk_user,
    release_webhook_delivery,
    sync_clerk_user,
)

log = get_logger(__name__)
router = APIRouter(tags=["webhooks"])


def primary_email(data: dict[str, Any]) -> str | None:
    """The primary email address of a Clerk user object."""
    primary_id = data.get("primary_email_address_id")
    for entry in data.get("email_addresses") or []:
        if (
            isinstance(entry, dict)
            and entry.get("id") == primary_id
            and isinstance(entry.get("email_address"), str)
        ):
            return str(entry["email_address"]).strip().lower() or None
    return None


@router.post(
    "/v1/webhooks/clerk",
    responses={400: PROBLEM, 401: PROBLEM, 415: PROBLEM, 503: PROBLEM},
    summary="Clerk user webhooks (Svix-signed)",
)
async def clerk_webhook(request: Request, gateway: GatewayDep) -> Response:
    verifier = gateway.clerk_webhook
    if verifier is None:
        raise HTTPException(503, "Clerk webhooks are not configured.")
    if not is_json_media_type(request.headers.get("content-type")):
        raise HTTPException(415, "Send the webhook as application/json.")
    body = await request.body()
    try:
        verify_clerk_webhook(verifier, body=body, headers=request.headers)
    except InvalidWebhook as exc:
        log.warning("clerk webhook refused", reason=str(exc))
        raise HTTPException(401, "The webhook signature is not valid.") from None
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "The webhook body is not valid JSON.") from None
    event_type = event.get("type") if isinstance(event, dict) else None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise HTTPException(400, "The webhook body is not a Clerk event.")
    clerk_user_id = data.get("id")
    if event_type not in ("user.created", "user.updated", "user.deleted"):
        return JSONBytes({"status": "ignored"})
    if not isinstance(clerk_user_id, str) or not clerk_user_id or len(clerk_user_id) > 255:
        raise HTTPException(400, "The webhook names no user.")
    # A message id is applied once: a replay (or a late retry of an older update) changes nothing.
    svix_id = request.headers["svix-id"]  # present: the signature covers it
    claimed = await claim_webhook_delivery(uow_factory=gateway.uow, svix_id=svix_id, event_type=event_type)
    if not claimed:
        return JSONBytes({"status": "duplicate"})
    try:
        if event_type == "user.deleted":
            await erase_clerk_user(uow_factory=gateway.uow, cache=gateway.users, clerk_user_id=clerk_user_id)
        else:
            await sync_clerk_user(
                uow_factory=gateway.uow,
                cache=gateway.users,
                clerk_user_id=clerk_user_id,
                email=primary_email(data),
            )
    except BaseException:
        await release_webhook_delivery(uow_factory=gateway.uow, svix_id=svix_id)
        raise
    return JSONBytes({"status": "processed"})
