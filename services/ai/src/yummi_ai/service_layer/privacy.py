"""A user's data in the ai context: the export (never the keys themselves) and erasure."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from yummi.events.v1 import events_pb2 as ev
from yummi_ai.adapters.tables import ai_budget, ai_budget_reservations, ai_usage, api_credentials
from yummi_ai.service_layer.ids import parse_id
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_common.timeutil import isoformat

log = get_logger(__name__)

CONTEXT = "ai"


async def export_user_data(*, session: AsyncSession, user_id: str) -> str:
    """The user's stored credentials (labels and hints only) and usage history, as a JSON document."""
    uid = parse_id(user_id, "user_id")
    credentials = (
        await session.execute(
            select(
                api_credentials.c.id,
                api_credentials.c.provider,
                api_credentials.c.label,
                api_credentials.c.key_hint,
                api_credentials.c.created_at,
                api_credentials.c.last_used_at,
            )
            .where(api_credentials.c.user_id == uid)
            .order_by(api_credentials.c.created_at)
        )
    ).all()
    usage = (
        await session.execute(
            select(ai_usage).where(ai_usage.c.user_id == uid).order_by(ai_usage.c.created_at, ai_usage.c.id)
        )
    ).all()
    document: dict[str, Any] = {
        "context": CONTEXT,
        "user_id": str(uid),
        "credentials": [
            {
                "id": str(c.id),
                "provider": c.provider,
                "label": c.label,
                "key_hint": c.key_hint,
                "created_at": isoformat(c.created_at),
                "last_used_at": isoformat(c.last_used_at),
            }
            for c in credentials
        ],
        "usage": [
            {
                "model": u.model,
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "cost_micro_usd": u.cost_micro_usd,
                "latency_ms": u.latency_ms,
                "key_source": u.key_source,
                "prompt_sha256": u.prompt_sha256,
                "response_sha256": u.response_sha256,
                "created_at": isoformat(u.created_at),
            }
            for u in usage
        ],
    }
    return orjson.dumps(document).decode()


async def erase_user(*, uow: UnitOfWork, user_id: uuid.UUID) -> None:
    """Delete the user's stored provider keys, usage log and budget rows, and report the erasure done."""
    for table in (api_credentials, ai_usage, ai_budget_reservations, ai_budget):
        await uow.session.execute(delete(table).where(table.c.user_id == user_id))
    uow.emit(
        "identity.user.erasure_completed", ev.UserErasureCompleted(user_id=str(user_id), context=CONTEXT)
    )
    log.info("user erased from ai", user_id=str(user_id))
