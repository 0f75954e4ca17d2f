"""The outbox relay: publishes committed outbox rows to JetStream (Nats-Msg-Id = event id) and marks them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from sqlalchemy import any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
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
        outbox = tables.outbox
        # Built once (the claim's size is fixed): SQLAlchemy reuses their cache keys and compiled forms.
        self._claim = (
            select(outbox.c.id, outbox.c.event_type, outbox.c.payload, outbox.c.headers, outbox.c.created_at)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.created_at, outbox.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        self._mark = (
            update(outbox)
            .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(outbox.c.id.type))))
            .values(published_at=func.now(), attempts=outbox.c.attempts + 1)
        )

    def kick(self) -> None:
        """Wake the relay now (called after a commit that wrote events)."""
        self._wake.set()

    async def publish_batch(self) -> int:
        """Claim a batch of unpublished rows, publish them with asynchronous acks, mark the acked ones.

        One transaction per batch: the claim (`FOR UPDATE SKIP LOCKED`: another relay takes other rows), the
        publishes (sent back to back in commit order, acks awaited together) and one UPDATE of the rows whose
        publish JetStream acknowledged. A row without an ack stays unpublished and goes again in a later
        round; JetStream drops the copy it may already hold (Nats-Msg-Id = event id). Returns how many rows
        were published; raises the first failure after marking the rest.
        """
        async with self._engine.begin() as conn:
            rows = (await conn.execute(self._claim)).all()
            if not rows:
                return 0
            acks = await self._publish_rows(rows)
            published = [
                row.id for row, ack in zip(rows, acks, strict=True) if not isinstance(ack, BaseException)
            ]
            failure = next((ack for ack in acks if isinstance(ack, BaseException)), None)
            # Mark what reached the stream even when another publish failed (this transaction commits).
            if published:
                await conn.execute(self._mark, {"ids": published})
        self._published.inc(len(published))
        if failure is not None:
            raise failure
        return len(published)

    async def _publish_rows(self, rows: Sequence[Any]) -> list[Any]:
        """Send every row, then await all their acks (within `publish_timeout`): a PubAck or an error each."""
        futures: list[asyncio.Future[Any]] = []
        send_error: Exception | None = None
        for row in rows:
            try:
                futures.append(await self._publish_row(row))
            except Exception as exc:  # noqa: BLE001 - not sent: this row and the rest wait for the next round
                send_error = exc
                break
        if futures:
            _done, pending = await asyncio.wait(futures, timeout=self._publish_timeout)
            for future in pending:
                future.cancel()
        results: list[Any] = []
        for future in futures:
            if future.cancelled():
                results.append(TimeoutError(f"no publish ack within {self._publish_timeout} s"))
            else:
                results.append(future.exception() or future.result())
        results.extend(send_error for _ in range(len(rows) - len(futures)))
        return results

    async def _publish_row(self, row: Any) -> asyncio.Future[Any]:
        """Send one row to JetStream; the returned future resolves with its PubAck (or the stream's error)."""
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
            return await self._js.publish_async(
                subject,
                row.payload,
                wait_stall=self._publish_timeout,
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
