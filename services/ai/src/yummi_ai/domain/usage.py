"""The daily token budget: which day a use counts towards and what is left of the limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta


def usage_day(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day `now` falls in, as [start, end): budgets reset at midnight UTC."""
    start = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class DailyUsage:
    """What a user spent today against the daily token limit."""

    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int
    requests: int
    daily_token_limit: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def remaining_tokens(self) -> int:
        return max(self.daily_token_limit - self.tokens, 0)

    @property
    def exhausted(self) -> bool:
        return self.tokens >= self.daily_token_limit


def budget_allows(*, used: int, reserved: int, amount: int, limit: int) -> bool:
    """Whether reserving `amount` more tokens keeps spent plus in-flight tokens within the daily limit."""
    return used + reserved + amount <= limit


def budget_spent_message(*, used: int, reserved: int, amount: int, limit: int) -> str:
    if amount > limit:
        return (
            f"this request may use {amount} tokens, more than the daily limit of {limit}; "
            "send a shorter prompt or a lower max_tokens"
        )
    return (
        f"daily AI token budget reached: {used} of {limit} tokens used today"
        + (f" and {reserved} in flight" if reserved else "")
        + f"; this request needs up to {amount}. The budget resets at 00:00 UTC"
    )
