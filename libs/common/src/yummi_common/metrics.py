"""Prometheus metrics shared by every process (gRPC, DB pool, outbox, consumers, AI usage) and their endpoint.

Names follow Prometheus conventions: a `yummi_` prefix, base units (`_seconds`, `_usd`), `_total` on counters.
They live in prometheus_client's default registry; a gRPC service serves it on its metrics port
(`Settings.metrics_port_for`), the gateway appends it to its own `/metrics`. Label values are bounded sets
(method names, status codes, consumer names, model names from the allowlist), never ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_common.logging import get_logger

log = get_logger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BUILD_INFO = Gauge(
    "yummi_build_info", "Always 1: the service and version of this process.", ["service", "version"]
)

GRPC_SERVER_HANDLED = Counter(
    "yummi_grpc_server_handled_total",
    "gRPC calls this server answered, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_SECONDS = Histogram(
    "yummi_grpc_server_handling_seconds",
    "Time this server took to answer a gRPC call, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_HANDLED = Counter(
    "yummi_grpc_client_handled_total",
    "gRPC calls this process made, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "yummi_grpc_client_handling_seconds",
    "Time a gRPC call this process made took (retries included), by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=LATENCY_BUCKETS,
)

OUTBOX_BACKLOG = Gauge("yummi_outbox_backlog", "Outbox rows not yet published to NATS.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "yummi_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row (the relay's lag); 0 when none.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter("yummi_outbox_published_total", "Outbox rows published to NATS.", ["service"])
DEAD_LETTERS = Gauge("yummi_dead_letters", "Rows in the service's dead_letters table.", ["service"])

EVENTS_HANDLED = Counter(
    "yummi_events_handled_total",
    "Deliveries a consumer handled, by outcome: applied, duplicate (inbox hit), failed (redelivered later), "
    "dead_lettered.",
    ["consumer", "outcome"],
)
EVENTS_REDELIVERED = Counter(
    "yummi_events_redelivered_total", "Deliveries of an event after its first one.", ["consumer"]
)
EVENTS_DEAD_LETTERED = Counter(
    "yummi_events_dead_lettered_total",
    "Events a consumer gave up on and recorded as dead letters.",
    ["consumer"],
)
EVENT_HANDLING_SECONDS = Histogram(
    "yummi_event_handling_seconds",
    "Time to apply one event (inbox insert, handler, commit).",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)

AI_TOKENS = Counter(
    "yummi_ai_tokens_total",
    "OpenAI tokens used, by model, token kind (prompt|completion) and whose key paid (server|user).",
    ["model", "kind", "key_source"],
)
AI_COST = Counter(
    "yummi_ai_cost_usd_total",
    "Estimated OpenAI cost in US dollars, by model and whose key paid.",
    ["model", "key_source"],
)


def record_ai_usage(
    *, model: str, prompt_tokens: int, completion_tokens: int, cost_micro_usd: int, key_source: str = "server"
) -> None:
    """Count one completion's tokens and cost (`model` must come from the allowlist: it is a label)."""
    AI_TOKENS.labels(model, "prompt", key_source).inc(max(prompt_tokens, 0))
    AI_TOKENS.labels(model, "completion", key_source).inc(max(completion_tokens, 0))
    AI_COST.labels(model, key_source).inc(max(cost_micro_usd, 0) / 1_000_000)


class RpcMetrics:
    """The counter and histogram children of one side (server or client), cached per (method, code)."""

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        self._counter = counter
        self._histogram = histogram
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Record one call; `method` is the full `/package.Service/Method` path."""
        key = (method, code)
        children = self._children.get(key)
        if children is None:
            service, _, name = method.lstrip("/").partition("/")
            children = (
                self._counter.labels(service, name, code),
                self._histogram.labels(service, name, code),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


GRPC_SERVER = RpcMetrics(GRPC_SERVER_HANDLED, GRPC_SERVER_SECONDS)
GRPC_CLIENT = RpcMetrics(GRPC_CLIENT_HANDLED, GRPC_CLIENT_SECONDS)


class _PoolCollector(Collector):
    """Reads each watched engine's pool at scrape time, so the request path pays nothing."""

    def __init__(self) -> None:
        self._engines: weakref.WeakValueDictionary[str, AsyncEngine] = weakref.WeakValueDictionary()

    def watch(self, name: str, engine: AsyncEngine) -> None:
        self._engines[name] = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        in_use = GaugeMetricFamily(
            "yummi_db_pool_connections",
            "Database connections of the pool, by state.",
            labels=["pool", "state"],
        )
        size = GaugeMetricFamily(
            "yummi_db_pool_max_connections",
            "Most connections the pool opens (size + overflow).",
            labels=["pool"],
        )
        for name, engine in list(self._engines.items()):
            pool: Any = engine.pool
            try:
                checked_out, checked_in = int(pool.checkedout()), int(pool.checkedin())
                limit = int(pool.size()) + max(int(getattr(pool, "_max_overflow", 0)), 0)
            except (AttributeError, TypeError):  # a pool without counts (NullPool, StaticPool)
                continue
            in_use.add_metric([name, "in_use"], checked_out)
            in_use.add_metric([name, "idle"], checked_in)
            size.add_metric([name], limit)
        yield in_use
        yield size

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


_POOLS = _PoolCollector()
REGISTRY.register(_POOLS)


def watch_engine(name: str, engine: AsyncEngine) -> None:
    """Export the connection pool of `engine` as `yummi_db_pool_*{pool=name}`."""
    _POOLS.watch(name, engine)


def set_build_info(service: str, version: str) -> None:
    BUILD_INFO.labels(service, version).set(1)


class MetricsServer:
    """The `/metrics` HTTP endpoint of a gRPC service, on its own thread (off the event loop)."""

    def __init__(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from inside the cluster
        self.server, self._thread = start_http_server(port, addr=addr)
        self.port = int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)


def start_metrics_server(port: int | None) -> MetricsServer | None:
    """Serve the default registry on `port`; a busy port is logged, never fatal."""
    if not port:
        return None
    try:
        server = MetricsServer(port)
    except OSError as exc:
        log.error("metrics endpoint not started", port=port, error=str(exc))
        return None
    log.info("metrics endpoint started", port=server.port)
    return server


async def refresh_periodically(
    refresh: Callable[[], Awaitable[None]], *, interval: float, stop: asyncio.Event, name: str
) -> None:
    """Run `refresh` now and every `interval` seconds until `stop` is set; failures log once per outage."""
    if interval <= 0:
        return
    healthy = True
    while not stop.is_set():
        started = time.monotonic()
        try:
            await refresh()
            if not healthy:
                log.info("metrics refresh recovered", gauges=name)
            healthy = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a gauge that cannot refresh keeps its last value
            if healthy:
                log.warning(
                    "metrics refresh failed", gauges=name, error=str(exc), error_type=type(exc).__name__
                )
            healthy = False
        wait = max(interval - (time.monotonic() - started), 0.05)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
