"""The outbox relay: publishes committed outbox rows to JetStream (Nats-Msg-Id = event id) and marks them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_common import metrics, telemetry
from yummi_common.logging import get_logger
from yummi_common.messaging.events import subject_for
from yummi_common.messaging.tables import MessagingTables
from yummi_common.settings import Settings
from yummi_common.timeutil import utcnow

log = get_logger(__name__)


class OutboxRelay:
    """Publishes unpublished outbox rows in commit order; safe with several relays (rows are claimed)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        tables: MessagingTables,
        js: JetStreamContext,
        settings: Settings,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        publish_timeout: float = 5.0,
        service: str = "",
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._outbox = tables.outbox
        self._js = js
        self._settings = settings
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        self._published = metrics.OUTBOX_PUBLISHED.labels(service)
        self._service = service

    def kick(self) -> None:
        """Wake the relay now (called after a commit that wrote events)."""
        self._wake.set()

    async def publish_batch(self) -> int:
        """Claim up to a batch of unpublished rows, publish them in order and mark them; return how many."""
        outbox = self._outbox
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(
                        outbox.c.id,
                        outbox.c.event_type,
                        outbox.c.payload,
                        outbox.c.headers,
                        outbox.c.created_at,
                    )
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.created_at, outbox.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            published = []
            failure: Exception | None = None
            for row in rows:
                try:
                    await self._publish_row(row)
                except Exception as exc:  # noqa: BLE001 - keep the rest for the next round
                    failure = exc
                    break
                published.append(row.id)
            # Mark what reached the stream even when a later publish failed (this transaction commits).
            if published:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(published))
                    .values(published_at=func.now(), attempts=outbox.c.attempts + 1)
                )
        self._published.inc(len(published))
        if failure is not None:
            raise failure
        return len(published)

    async def _publish_row(self, row: Any) -> None:
        headers = {
            "Nats-Msg-Id": str(row.id),
            "ce-id": str(row.id),
            "ce-type": row.event_type,
            "ce-source": str(row.headers.get("ce-source", "")),
            "ce-time": row.created_at.isoformat(),
            "ce-specversion": "1.0",
        }
        for key in ("x-request-id", "traceparent", "tracestate"):
            if row.headers.get(key):
                headers[key] = str(row.headers[key])
        subject = subject_for(self._settings.nats_subject_prefix, row.event_type)
        # A span in the producer's trace (the context the outbox row kept); consumers continue from it.
        with telemetry.continue_trace(
            f"publish {row.event_type}",
            carrier=headers,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.destination.name": subject,
                "messaging.message.id": str(row.id),
            },
        ) as span:
            if span is not None:
                telemetry.inject(headers)
            await self._js.publish(
                subject,
                row.payload,
                timeout=self._publish_timeout,
                stream=self._settings.nats_stream,
                headers=headers,
            )

    async def backlog(self) -> tuple[int, float]:
        """Unpublished rows and the age in seconds of the oldest one."""
        outbox = self._outbox
        async with self._engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
                )
            ).one()
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0
        return int(count), age

    async def refresh_gauges(self) -> None:
        """Set the backlog, relay-lag and dead-letter gauges from the database (run periodically)."""
        count, age = await self.backlog()
        async with self._engine.connect() as conn:
            dead = await conn.scalar(select(func.count()).select_from(self._tables.dead_letters))
        metrics.OUTBOX_BACKLOG.labels(self._service).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(self._service).set(age)
        metrics.DEAD_LETTERS.labels(self._service).set(int(dead or 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; back off while NATS or Postgres is unavailable."""
        backoff = self._poll_interval
        while not stop.is_set():
            try:
                count = await self.publish_batch()
                backoff = self._poll_interval
                if count >= self._batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep rows, retry later
                log.warning("outbox relay failed; will retry", error=str(exc), error_type=type(exc).__name__)
                backoff = min(backoff * 2, 5.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
