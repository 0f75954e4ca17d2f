"""Retry waits (full jitter, retry-after), the price table, and the shape of a stored credential."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from yummi_ai.domain.credentials import key_hint, validate_new_credential
from yummi_ai.domain.pricing import FALLBACK_PRICE, PRICES, cost_micro_usd
from yummi_ai.domain.retry import backoff_delay, next_delay, parse_retry_after
from yummi_ai.domain.usage import budget_allows, budget_spent_message
from yummi_common.errors import InvalidArgument


def test_full_jitter_stays_within_the_exponential_bound_and_the_cap():
    assert backoff_delay(0, base=0.5, cap=8, rand=lambda: 0.999) < 0.5
    assert backoff_delay(3, base=0.5, cap=8, rand=lambda: 0.999) < 4
    assert backoff_delay(10, base=0.5, cap=8, rand=lambda: 0.999) < 8
    assert backoff_delay(5, base=0.5, cap=8, rand=lambda: 0.0) == 0


def test_retry_after_wins_over_backoff_and_milliseconds_win_over_seconds():
    assert next_delay(0, retry_after=2.0, base=0.5, cap=8, rand=lambda: 0.5) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0


def test_retry_after_as_an_http_date_and_nonsense():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now) == pytest.approx(7)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "86400"}) is None  # not worth waiting for: fail instead
    assert parse_retry_after({}) is None


def test_cost_is_integer_micro_usd_rounded_up():
    assert cost_micro_usd("gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=0) == 150_000
    assert cost_micro_usd("gpt-4o-mini", prompt_tokens=1, completion_tokens=1) == 1
    assert cost_micro_usd("gpt-4o-mini", prompt_tokens=0, completion_tokens=0) == 0


def test_an_unpriced_model_is_charged_the_dearest_known_price():
    assert cost_micro_usd("some-new-model", prompt_tokens=1_000_000, completion_tokens=0) == max(
        p.input_micro_usd_per_million for p in PRICES.values()
    )
    assert FALLBACK_PRICE.output_micro_usd_per_million >= PRICES["gpt-4.1"].output_micro_usd_per_million


def test_budget_counts_spent_and_in_flight_tokens():
    assert budget_allows(used=900, reserved=50, amount=50, limit=1000)
    assert not budget_allows(used=900, reserved=50, amount=51, limit=1000)
    assert "more than the daily limit" in budget_spent_message(used=0, reserved=0, amount=2000, limit=1000)
    assert "in flight" in budget_spent_message(used=900, reserved=50, amount=100, limit=1000)


def test_key_hint_shows_only_the_last_four_characters():
    assert key_hint("sk-proj-abcdefgh1234") == "sk-…1234"
    assert key_hint("custom-provider-key-9876") == "…9876"


def test_a_new_credential_is_trimmed_and_checked():
    new = validate_new_credential(provider="OpenAI", label="  work  ", api_key="  sk-abcdefgh  ")
    assert (new.provider, new.label, new.api_key) == ("openai", "work", "sk-abcdefgh")
    with pytest.raises(InvalidArgument) as info:
        validate_new_credential(provider="openai", label="x" * 129, api_key="short")
    assert [e["field"] for e in info.value.errors] == ["label", "api_key"]
    with pytest.raises(InvalidArgument):
        validate_new_credential(provider="openai", label="bell\x07", api_key="sk-abcdefgh")
