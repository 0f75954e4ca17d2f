"""The daily usage window and budget, with no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from yummi_ai.domain.usage import DailyUsage, usage_day


def test_usage_day_runs_from_utc_midnight_to_the_next():
    start, end = usage_day(datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC))
    assert start == datetime(2026, 3, 14, tzinfo=UTC)
    assert end - start == timedelta(days=1)


def test_usage_day_of_a_local_time_is_its_utc_day():
    sast = timezone(timedelta(hours=2))
    start, _ = usage_day(datetime(2026, 3, 15, 1, 0, tzinfo=sast))  # 23:00 UTC on the 14th
    assert start == datetime(2026, 3, 14, tzinfo=UTC)


def test_budget_counts_prompt_and_completion_tokens_against_the_limit():
    usage = DailyUsage(
        prompt_tokens=300, completion_tokens=200, cost_micro_usd=12, requests=2, daily_token_limit=1_000
    )
    assert (usage.tokens, usage.remaining_tokens, usage.exhausted) == (500, 500, False)
    spent = DailyUsage(
        prompt_tokens=900, completion_tokens=200, cost_micro_usd=0, requests=3, daily_token_limit=1_000
    )
    assert (spent.remaining_tokens, spent.exhausted) == (0, True)
