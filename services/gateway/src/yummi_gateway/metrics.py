"""Prometheus metrics of the HTTP edge: requests and latency by route template and status.

`/metrics` also shows the process-wide registry of yummi_common.metrics (gRPC client calls, the database pool,
the outbox, the process itself). With several gateway workers (`GATEWAY_WORKERS` > 1) every worker writes its
counters, histograms and gauges to files in `PROMETHEUS_MULTIPROC_DIR` and `/metrics`, whichever worker
answers, adds them up; what is computed at scrape time in one process (the database pool, `process_*`) is
left out then.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """One registry per app, so several apps (tests) never clash on metric names."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "yummi_gateway_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "yummi_gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.catalog_cache = Counter(
            "yummi_gateway_catalog_cache_total",
            "Public catalog pages answered from the edge cache (hit) or fetched from the catalog (miss).",
            ["result"],
            registry=self.registry,
        )

        # (method, route, status) → the labelled children: `labels()` validates and locks on every call.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry) + generate_latest(REGISTRY)


def multiprocess() -> bool:
    """True in a worker of a multi-process gateway (metrics live in files shared by the workers)."""
    return bool(os.environ.get(MULTIPROCESS_DIR_VARIABLE))


def worker_stopped() -> None:
    """A worker's last word: its live gauges no longer count (its counters and histograms still do)."""
    if multiprocess():
        mark_process_dead(os.getpid())
