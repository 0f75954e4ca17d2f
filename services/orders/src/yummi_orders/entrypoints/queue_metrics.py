"""Prometheus gauges of the runner queue (depth, claimed, oldest wait), refreshed from the database."""

from __future__ import annotations

from prometheus_client import Gauge

from yummi_common.db import UnitOfWorkFactory
from yummi_common.metrics import refresh_periodically
from yummi_common.service import Runtime
from yummi_orders.service_layer.orders import get_pending_counts

QUEUE_DEPTH = Gauge("yummi_orders_queue_depth", "Orders queued and waiting for a runner.")
CLAIMED = Gauge("yummi_orders_claimed", "Orders a runner has claimed and holds the lease of.")
OLDEST_QUEUED_AGE = Gauge(
    "yummi_orders_queue_oldest_age_seconds", "How long the oldest queued order has waited; 0 when none."
)


async def refresh_queue_gauges(*, uow_factory: UnitOfWorkFactory) -> None:
    """Read the queue's counts (the GetPendingCounts query) into the gauges."""
    async with uow_factory() as uow:
        queued, claimed, oldest_seconds = await get_pending_counts(uow=uow)
    QUEUE_DEPTH.set(queued)
    CLAIMED.set(claimed)
    OLDEST_QUEUED_AGE.set(oldest_seconds)


async def run_queue_gauges(runtime: Runtime) -> None:
    """Refresh the queue gauges every METRICS_REFRESH_SECONDS until the service stops."""
    await refresh_periodically(
        lambda: refresh_queue_gauges(uow_factory=runtime.uow),
        interval=runtime.settings.metrics_refresh_seconds,
        stop=runtime.stop_event,
        name="orders-queue",
    )
