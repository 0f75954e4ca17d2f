"""Which budgets a request spends (per user, per client IP, the stricter AI one) and the headers saying so."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW_SECONDS = 60
# PayFast ITNs and Clerk webhooks come from a few provider IPs in bursts (and are retried on failure): they
# get a budget of their own per source IP, this many times the anonymous one, so browsing from the same
# address never starves them and a burst of notifications is not refused.
WEBHOOK_BUDGET_FACTOR = 10
# Probes and scrapers must never see a 429; these answer from memory or with sub-second deadlines.
EXEMPT_PATHS = frozenset({"/metrics", "/v1/health", "/v1/thin/health"})
WEBHOOK_PATHS = frozenset({"/payments/payfast/itn", "/v1/payments/payfast/itn", "/v1/webhooks/clerk"})
AI_PREFIX = "/v1/ai/"


class RouteClass(enum.Enum):
    EXEMPT = "exempt"
    WEBHOOK = "webhook"
    AI = "ai"
    STANDARD = "standard"


def classify(path: str) -> RouteClass:
    """The rate-limit class of a request path."""
    if path in EXEMPT_PATHS:
        return RouteClass.EXEMPT
    if path in WEBHOOK_PATHS:
        return RouteClass.WEBHOOK
    if path.startswith(AI_PREFIX):
        return RouteClass.AI
    return RouteClass.STANDARD


@dataclass(frozen=True)
class Limits:
    """Requests per minute: per authenticated user, per user on /v1/ai/*, per anonymous client IP."""

    per_user: int
    per_user_ai: int
    per_ip: int

    @property
    def per_webhook_ip(self) -> int:
        return self.per_ip * WEBHOOK_BUDGET_FACTOR


@dataclass(frozen=True)
class Bucket:
    """One budget; a caller's buckets share `subject` (one Redis hash slot) and differ by `name`."""

    subject: str
    name: str
    limit: int


def buckets_for(route: RouteClass, *, user: str | None, client_ip: str, limits: Limits) -> list[Bucket]:
    """The budgets one request spends: all of them must have room, or none is charged."""
    if route is RouteClass.EXEMPT:
        return []
    if route is RouteClass.WEBHOOK:
        return [Bucket(f"ip:{client_ip}", "hook", limits.per_webhook_ip)]
    if user is None:
        return [Bucket(f"ip:{client_ip}", "all", limits.per_ip)]
    buckets = [Bucket(f"u:{user}", "all", limits.per_user)]
    if route is RouteClass.AI:
        buckets.append(Bucket(f"u:{user}", "ai", limits.per_user_ai))
    return buckets


def fails_closed(route: RouteClass) -> bool:
    """Without the limiter, AI calls (they cost money) are refused; everything else is let through."""
    return route is RouteClass.AI


@dataclass(frozen=True)
class BucketState:
    """What the limiter answered for one bucket (times in seconds, rounded up)."""

    limit: int
    allowed: bool
    remaining: int
    retry_after: int
    reset: int


@dataclass(frozen=True)
class Decision:
    """The outcome for the request: allowed or not, and the bucket the headers describe."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """`RateLimit-*` (IETF httpapi draft, delta-seconds reset), plus `Retry-After` when refused."""
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
            (b"ratelimit-policy", f"{self.limit};w={WINDOW_SECONDS}".encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(max(self.retry_after, 1)).encode()))
        return headers


def decide(states: Sequence[BucketState]) -> Decision:
    """Refused when any bucket refused (report the longest wait); else report the bucket closest to empty."""
    refused = [s for s in states if not s.allowed]
    if refused:
        worst = max(refused, key=lambda s: (s.retry_after, -s.limit))
        return Decision(False, worst.limit, 0, max(worst.reset, worst.retry_after), worst.retry_after)
    tightest = min(states, key=lambda s: (s.remaining, s.limit))
    return Decision(True, tightest.limit, tightest.remaining, tightest.reset, 0)
