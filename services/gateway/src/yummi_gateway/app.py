"""The FastAPI app factory: lifespan wiring, middleware order, problem handlers and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from yummi_common.heap import settle_heap
from yummi_common.settings import Settings
from yummi_gateway.bootstrap import Gateway, start_gateway
from yummi_gateway.compression import CompressionMiddleware
from yummi_gateway.config import CATALOG_IMPORT_BODY_LIMIT, DEFAULT_BODY_LIMIT
from yummi_gateway.entrypoints.routes import (
    admin,
    ai,
    basket,
    catalog,
    health,
    me,
    orders,
    payments,
    webhooks,
)
from yummi_gateway.idempotency import IdempotencyMiddleware
from yummi_gateway.metrics import HttpMetrics, worker_stopped
from yummi_gateway.middleware import BodyLimitMiddleware, EdgeMiddleware
from yummi_gateway.page_cache import PageCacheMiddleware
from yummi_gateway.problems import install_problem_handlers
from yummi_gateway.rate_limiting import RateLimitMiddleware
from yummi_gateway.responses import JSONBytes

UUID_SEGMENT = r"[^/]+"


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway app; the lifespan connects to Postgres, NATS, Redis and the services."""
    metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = await start_gateway(settings, metrics)
        app.state.gateway = gateway
        settle_heap()  # modules, routes and clients live as long as the process: out of the collector's way
        try:
            yield
        finally:
            await gateway.close()
            worker_stopped()

    dev = settings.environment in ("dev", "test")
    app = FastAPI(
        title="Yummi API",
        version=settings.version,
        description="The public REST API of Yummi. Errors are RFC 9457 problem details.",
        lifespan=lifespan,
        default_response_class=JSONBytes,
        docs_url="/docs" if dev else None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    for router in (health.router, catalog.router, me.router, basket.router, orders.router, payments.router):
        app.include_router(router)
    for router in (ai.router, admin.router, webhooks.router):
        app.include_router(router)
    if settings.thin_slice_enabled:
        app.include_router(health.thin_router())
        app.include_router(catalog.thin_router())

    def current_gateway() -> Gateway:
        return app.state.gateway  # type: ignore[no-any-return]

    # Added innermost first. Outermost → innermost: Edge → compression → CORS (so 429s carry CORS headers)
    # → rate limits (identify the caller once) → cached catalog pages (answered here, see page_cache)
    # → body limits → Idempotency-Key (reads the capped body) → FastAPI's exception layer → routes.
    app.add_middleware(IdempotencyMiddleware, gateway=current_gateway)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=DEFAULT_BODY_LIMIT,
        limits=[
            ("POST", "/v1/admin/catalog/import", CATALOG_IMPORT_BODY_LIMIT),
            ("PUT", rf"/v1/admin/datasets/{UUID_SEGMENT}/file", settings.dataset_upload_max_bytes),
        ],
    )
    app.add_middleware(PageCacheMiddleware, gateway=current_gateway)
    app.add_middleware(RateLimitMiddleware, gateway=current_gateway)
    origins = settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,  # bearer tokens, no cookies: credentials mode is never needed
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-None-Match",
                "X-Request-ID",
            ],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
                "Idempotent-Replayed",
                "ETag",
            ],
            max_age=600,
        )
    app.add_middleware(CompressionMiddleware)
    # Outermost; it also makes an incoming traceparent the context of the whole request (access-log included).
    app.add_middleware(EdgeMiddleware, metrics=metrics, hsts=not dev)
    return app
