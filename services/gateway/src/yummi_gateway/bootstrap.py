"""Wires one gateway process: the runtime (engine, unit of work, outbox relay), gRPC clients, the verifier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from svix.webhooks import Webhook

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_common.service import Runtime
from yummi_common.settings import Settings
from yummi_gateway.adapters.clerk import ClerkVerifier, JwksCache
from yummi_gateway.adapters.clerk_webhooks import clerk_webhook_verifier
from yummi_gateway.adapters.grpc_clients import ServiceClients
from yummi_gateway.adapters.idempotency_store import RedisIdempotencyStore
from yummi_gateway.adapters.rate_limiter import RedisRateLimiter
from yummi_gateway.adapters.redis_client import SOCKET_TIMEOUT_SECONDS, RedisGuard, connect_redis
from yummi_gateway.adapters.redis_pipeline import RedisPipeline, connect_pipeline
from yummi_gateway.adapters.tables import messaging, metadata
from yummi_gateway.domain.rate_limits import Limits
from yummi_gateway.metrics import HttpMetrics
from yummi_gateway.page_cache import PageCache
from yummi_gateway.service_layer.users import UserCache

log = get_logger(__name__)


@dataclass
class Gateway:
    """What route handlers and the edge middleware reach through `app.state.gateway`."""

    settings: Settings
    runtime: Runtime
    clients: ServiceClients
    verifier: ClerkVerifier | None
    metrics: HttpMetrics
    limits: Limits
    redis: Redis | None = None
    pipeline: RedisPipeline | None = None  # the rate limiter's connection (redis_pipeline)
    limiter: RedisRateLimiter | None = None
    idempotency: RedisIdempotencyStore | None = None
    clerk_webhook: Webhook | None = None
    users: UserCache = field(default_factory=UserCache)
    pages: PageCache = field(default_factory=lambda: PageCache(ttl=0, max_bytes=0))

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    async def close(self) -> None:
        await self.clients.close()
        if self.verifier is not None:
            await self.verifier.jwks.close()
        if self.pipeline is not None:
            await self.pipeline.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.runtime.close()


def build_verifier(settings: Settings) -> ClerkVerifier | None:
    """The Clerk verifier, or None when no issuer is configured (only dev tokens can work then)."""
    if not settings.clerk_issuer:
        return None
    issuer = settings.clerk_issuer.rstrip("/")
    jwks_url = settings.clerk_jwks_url or f"{issuer}/.well-known/jwks.json"
    return ClerkVerifier(
        issuer=settings.clerk_issuer,
        jwks=JwksCache(jwks_url),
        audience=settings.clerk_audience,
        authorized_parties=settings.authorized_parties,
    )


def limits_from(settings: Settings) -> Limits:
    return Limits(
        per_user=settings.rate_limit_per_minute,
        per_user_ai=settings.rate_limit_ai_per_minute,
        per_ip=settings.rate_limit_ip_per_minute,
    )


async def start_gateway(settings: Settings, metrics: HttpMetrics) -> Gateway:
    # Configuration errors fail the start, before any connection is opened.
    clerk_webhook = (
        clerk_webhook_verifier(settings.clerk_webhook_secret) if settings.clerk_webhook_secret else None
    )
    runtime = await Runtime.start(service="gateway", settings=settings, metadata=metadata, tables=messaging)
    gateway = Gateway(
        settings=settings,
        runtime=runtime,
        clients=ServiceClients.connect(settings),
        verifier=build_verifier(settings),
        metrics=metrics,
        limits=limits_from(settings),
        clerk_webhook=clerk_webhook,
    )
    gateway.pages = PageCache(
        ttl=settings.gateway_catalog_cache_seconds,
        max_bytes=settings.gateway_catalog_cache_mb * 1024 * 1024,
        on_hit=metrics.catalog_cache.labels("hit").inc,
        on_miss=metrics.catalog_cache.labels("miss").inc,
    )
    if gateway.pages.enabled:
        runtime.watch(
            "catalog.dataset.activated", _activation_handler(gateway.pages), name="catalog-activations"
        )
    if settings.redis_url:
        # Connects lazily: a Redis that is down fails requests by policy (see rate_limiting, idempotency).
        gateway.redis = connect_redis(settings.redis_url)
        guard = RedisGuard()
        prefix = settings.redis_key_prefix
        gateway.pipeline = connect_pipeline(settings.redis_url, timeout=SOCKET_TIMEOUT_SECONDS)
        gateway.limiter = RedisRateLimiter(
            gateway.redis, key_prefix=prefix, guard=guard, pipeline=gateway.pipeline
        )
        gateway.idempotency = RedisIdempotencyStore(gateway.redis, key_prefix=prefix, guard=guard)
    else:
        log.warning("no REDIS_URL: rate limits are off and requests with an Idempotency-Key are refused")
    log.info("gateway started", environment=settings.environment, dev_auth=settings.dev_auth_allowed)
    return gateway


def _activation_handler(pages: PageCache) -> Callable[[bytes], None]:
    """Drop every cached page when any catalog replica announces an activation (each gateway gets a copy)."""

    def activated(body: bytes) -> None:
        announced = events_pb2.DatasetActivated()
        try:
            announced.ParseFromString(body)
        except Exception:  # noqa: BLE001 - an unreadable body still means "something was activated"
            announced = events_pb2.DatasetActivated()
        pages.invalidate(announced.checksum_sha256 or None)
        log.debug("catalog pages dropped", version=announced.version)

    return activated
