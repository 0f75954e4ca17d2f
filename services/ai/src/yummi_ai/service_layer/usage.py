"""How much of the daily token budget a user has spent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yummi_ai.adapters.tables import ai_usage
from yummi_ai.domain.usage import DailyUsage, usage_day
from yummi_ai.service_layer.ids import parse_id
from yummi_common.timeutil import utcnow


async def get_daily_usage(
    *, session: AsyncSession, user_id: str, daily_token_limit: int, now: datetime | None = None
) -> DailyUsage:
    """Tokens, cost and requests the user spent today (UTC), with the daily limit."""
    uid = parse_id(user_id, "user_id")
    start, end = usage_day(now or utcnow())
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(ai_usage.c.prompt_tokens), 0).label("prompt"),
                func.coalesce(func.sum(ai_usage.c.completion_tokens), 0).label("completion"),
                func.coalesce(func.sum(ai_usage.c.cost_micro_usd), 0).label("cost"),
                func.count().label("requests"),
            ).where(ai_usage.c.user_id == uid, ai_usage.c.created_at >= start, ai_usage.c.created_at < end)
        )
    ).one()
    return DailyUsage(
        prompt_tokens=int(row.prompt),
        completion_tokens=int(row.completion),
        cost_micro_usd=int(row.cost),
        requests=int(row.requests),
        daily_token_limit=daily_token_limit,
    )
