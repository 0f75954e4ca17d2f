"""The runner loop: claim the next order, place it while heartbeating its lease, ack the outcome, repeat.

The lease is kept alive by a background heartbeat every third of the lease (as the claim's
`lease_expires_at` tells it). If the gateway says the lease is gone (another runner holds the order, or it
was requeued), placing stops and nothing is acked. A retailer that refuses the order (`PlacementFailed`) is
acked `failed` with its notes, so payments refunds; any other error leaves the order unacked, and its lease
runs out so another attempt can take it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from yummi_orders.runner.client import GatewayClient, GatewayError
from yummi_orders.runner.journal import RunnerLog
from yummi_orders.runner.retailers import PlacementFailed, Retailer

DEFAULT_LEASE_SECONDS = 300.0
MIN_HEARTBEAT_SECONDS = 0.2
ACK_ATTEMPTS = 5


@dataclass(frozen=True)
class RunnerOptions:
    """How the loop behaves: polling when the queue is empty, how many orders, which retailer."""

    poll_seconds: float = 2.0
    once: bool = False
    max_orders: int | None = None
    retailer: str | None = None
    heartbeat_seconds: float | None = None  # default: a third of the lease the claim reports


@dataclass
class RunnerStats:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    abandoned: int = 0  # lease lost or placement error: left for the lease to expire


class FatalRunnerError(Exception):
    """The runner cannot go on (bad token, not a runner account)."""


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def heartbeat_interval(lease_expires_at: str | None, *, override: float | None = None) -> float:
    """A third of the lease still left (the whole lease right after a claim or heartbeat)."""
    if override is not None:
        return max(MIN_HEARTBEAT_SECONDS, override)
    expires = _parse_time(lease_expires_at)
    left = (expires - datetime.now(UTC)).total_seconds() if expires else DEFAULT_LEASE_SECONDS
    if left <= 0 or left > 24 * 3600:  # a skewed clock: fall back to the default lease
        left = DEFAULT_LEASE_SECONDS
    return max(MIN_HEARTBEAT_SECONDS, left / 3)


class Runner:
    """Claims and handles orders until told to stop, the queue is empty (`once`) or `max_orders` is hit."""

    def __init__(
        self, *, client: GatewayClient, retailer: Retailer, log: RunnerLog, options: RunnerOptions
    ) -> None:
        self.client = client
        self.retailer = retailer
        self.log = log
        self.options = options
        self.stats = RunnerStats()
        self.stop = asyncio.Event()

    async def run(self) -> RunnerStats:
        """The main loop; returns what it did."""
        limit = 1 if self.options.once else self.options.max_orders
        while not self.stop.is_set() and (limit is None or self.stats.claimed < limit):
            try:
                order = await self.client.claim_next(retailer=self.options.retailer)
            except GatewayError as exc:
                if exc.auth_failed:
                    self.log.step("", "claim_refused", status=exc.status, detail=exc.detail)
                    raise FatalRunnerError(f"the gateway refused this runner's token ({exc})") from exc
                self.log.step("", "claim_error", status=exc.status, detail=exc.detail)
                if self.options.once:
                    raise FatalRunnerError(f"could not claim an order: {exc}") from exc
                await self._pause(exc.retry_after or self.options.poll_seconds)
                continue
            if order is None:
                if self.options.once:
                    break
                await self._pause(self.options.poll_seconds)
                continue
            self.stats.claimed += 1
            await self.handle(order)
        return self.stats

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def handle(self, order: dict[str, Any]) -> None:
        """Place one claimed order under a kept-alive lease and ack how it went."""
        order_id = str(order["id"])
        self.log.step(
            order_id,
            "claimed",
            lease_expires_at=order.get("lease_expires_at"),
            total_minor=order.get("total_minor"),
        )
        placing = asyncio.create_task(self._place(order_id, order), name=f"place-{order_id}")
        keeper = asyncio.create_task(
            self._keep_lease(order_id, order.get("lease_expires_at"), placing), name=f"lease-{order_id}"
        )
        try:
            outcome = await placing
        except asyncio.CancelledError:
            if keeper.done() and not keeper.cancelled() and keeper.result() is False:
                self.stats.abandoned += 1
                return  # the lease was lost: another runner may have the order now
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if outcome is None:
            self.stats.abandoned += 1
            return
        status, notes, reference = outcome
        await self._ack(order_id, status, notes=notes, reference=reference)

    async def _place(self, order_id: str, order: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
        self.log.step(
            order_id, "placing", retailer=order.get("retailer"), lines=len(order.get("items") or [])
        )
        try:
            placement = await self.retailer.place(order)
        except PlacementFailed as exc:
            self.log.step(order_id, "placement_failed", notes=exc.notes)
            return "failed", exc.notes[:1000] or "placement failed", None
        except Exception as exc:  # noqa: BLE001 - an adapter bug or outage: let the lease bring the order back
            self.log.step(order_id, "placement_error", error=f"{type(exc).__name__}: {exc}")
            return None
        self.log.step(order_id, "placed", retailer_reference=placement.retailer_reference)
        return "completed", None, placement.retailer_reference

    async def _keep_lease(
        self, order_id: str, lease_expires_at: str | None, placing: asyncio.Task[Any]
    ) -> bool:
        """Heartbeat until cancelled; returns False (and cancels the placement) once the lease is lost."""
        interval = heartbeat_interval(lease_expires_at, override=self.options.heartbeat_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                expires = await self.client.heartbeat(order_id)
            except GatewayError as exc:
                if exc.lease_lost:
                    self.log.step(order_id, "lease_lost", status=exc.status, detail=exc.detail)
                    placing.cancel()
                    return False
                self.log.step(order_id, "heartbeat_error", status=exc.status, detail=exc.detail)
                interval = max(MIN_HEARTBEAT_SECONDS, exc.retry_after or interval / 2)  # try again sooner
                continue
            except Exception as exc:  # noqa: BLE001 - a garbled answer: the lease is not known to be lost
                self.log.step(order_id, "heartbeat_error", error=f"{type(exc).__name__}: {exc}")
                interval = max(MIN_HEARTBEAT_SECONDS, interval / 2)
                continue
            self.log.step(order_id, "heartbeat", lease_expires_at=expires)
            interval = heartbeat_interval(expires, override=self.options.heartbeat_seconds)

    async def _ack(self, order_id: str, outcome: str, *, notes: str | None, reference: str | None) -> None:
        delay = 0.5
        for attempt in range(1, ACK_ATTEMPTS + 1):
            try:
                acked = await self.client.ack(
                    order_id, outcome=outcome, notes=notes, retailer_reference=reference
                )
            except GatewayError as exc:
                if exc.transient and attempt < ACK_ATTEMPTS:
                    self.log.step(order_id, "ack_retry", status=exc.status, detail=exc.detail)
                    await asyncio.sleep(exc.retry_after or delay)
                    delay *= 2
                    continue
                self.log.step(order_id, "ack_refused", outcome=outcome, status=exc.status, detail=exc.detail)
                self.stats.abandoned += 1
                return
            self.log.step(
                order_id,
                "acked",
                outcome=outcome,
                status=acked.get("status"),
                retailer_reference=reference,
                notes=notes,
            )
            if outcome == "completed":
                self.stats.completed += 1
            else:
                self.stats.failed += 1
            return
