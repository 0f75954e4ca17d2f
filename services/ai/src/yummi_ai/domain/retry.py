"""When to try a provider call again: exponential backoff with full jitter, or what `retry-after` asks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def backoff_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full jitter: a uniform wait in [0, min(cap, base * 2**attempt)) before retry number `attempt + 1`."""
    return rand() * min(cap, base * float(1 << min(attempt, 32)))


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date), if any."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1
        if 0 <= value < 3600:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if seconds < 3600 else None


def next_delay(
    attempt: int, *, retry_after: float | None, base: float, cap: float, rand: Callable[[], float]
) -> float:
    """The wait before the next attempt: the server's `retry-after` when given, else jittered backoff."""
    if retry_after is not None:
        return retry_after
    return backoff_delay(attempt, base=base, cap=cap, rand=rand)
