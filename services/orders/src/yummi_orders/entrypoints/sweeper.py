"""The lease sweeper: every few seconds, claimed orders whose lease ran out go back to the queue (or fail)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_orders.service_layer.queue import SWEEP_BATCH, release_expired_leases

log = get_logger(__name__)


async def sweep_once(*, uow_factory: Callable[[], UnitOfWork], max_attempts: int) -> int:
    """Release every expired lease, batch by batch; returns how many orders moved."""
    moved = 0
    while True:
        async with uow_factory() as uow:
            count = await release_expired_leases(uow=uow, max_attempts=max_attempts, limit=SWEEP_BATCH)
        moved += count
        if count < SWEEP_BATCH:
            return moved


async def run_lease_sweeper(
    *, uow_factory: Callable[[], UnitOfWork], max_attempts: int, interval: float, stop: asyncio.Event
) -> None:
    """Sweep until `stop` is set; a failing sweep (database away) is logged and retried next round."""
    log.info("lease sweeper started", interval=interval, max_attempts=max_attempts)
    while not stop.is_set():
        try:
            await sweep_once(uow_factory=uow_factory, max_attempts=max_attempts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("lease sweep failed; will retry", error=str(exc), error_type=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    log.info("lease sweeper stopped")
