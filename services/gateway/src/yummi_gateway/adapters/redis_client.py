"""The gateway's Redis: one bounded connection pool with short timeouts, and a guard that trips on failure."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from yummi_common.logging import get_logger

log = get_logger(__name__)

# Every request may touch Redis, so an outage must cost milliseconds, not the client's patience.
SOCKET_TIMEOUT_SECONDS = 0.5
POOL_WAIT_SECONDS = 0.5
MAX_CONNECTIONS = 64
GUARD_COOLDOWN_SECONDS = 1.0

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


class RedisUnavailable(Exception):
    """Redis did not answer (or the guard is open after a recent failure)."""


def connect_redis(url: str) -> Redis:
    """A client over a blocking pool (waits briefly for a free connection instead of opening without end)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        # One immediate retry covers a pooled connection the server closed; more would only add latency.
        retry=Retry(NoBackoff(), 1),
    )
    return Redis(connection_pool=pool)


class RedisGuard:
    """After a failure, callers skip Redis for a second (one warning per trip) instead of waiting on it."""

    def __init__(
        self, *, cooldown: float = GUARD_COOLDOWN_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._open_until = 0.0

    def check(self) -> None:
        """Raise RedisUnavailable while the guard is open."""
        if self._open_until and self._clock() < self._open_until:
            raise RedisUnavailable

    def failed(self, exc: BaseException, *, during: str) -> RedisUnavailable:
        """Open the guard; the error to raise."""
        if not self._open_until or self._clock() >= self._open_until:
            log.warning("redis unavailable", during=during, error=type(exc).__name__)
        self._open_until = self._clock() + self._cooldown
        return RedisUnavailable()

    def succeeded(self) -> None:
        self._open_until = 0.0
