"""The outbox relay: publishes committed outbox rows to JetStream (Nats-Msg-Id = event id) and marks them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from sqlalchemy import any_, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_common import metrics, telemetry
from yummi_common.db import autocommit_connection
from yummi_common.logging import get_logger
from yummi_common.messaging.events import subject_for
from yummi_common.messaging.tables import MessagingTables
from yummi_common.settings import Settings
from yummi_common.timeutil import utcnow

log = get_logger(__name__)

MAX_COMMITTED = 10_000  # committed rows waiting for the relay's next turn (more are left to the claim)


@dataclass(frozen=True)
class _Committed:
    """An outbox row a unit of work of this process just committed, shaped like a claimed row."""

    id: uuid.UUID
    event_type: str
    payload: bytes
    headers: dict[str, Any]
    created_at: datetime


class OutboxRelay:
    """Publishes committed outbox rows to JetStream and marks them; safe with several relays.

    Two paths. Rows a unit of work of this process commits are handed over (`publish_now`) and published on
    the relay's next turn without reading them back, then marked with one UPDATE per batch: no claim, no
    transaction, no waiting for a poll. Every other row (committed by a process that died before publishing,
    by one without a relay, or whose publish failed) is claimed once it is `claim_after` seconds old, in
    commit order, `FOR UPDATE SKIP LOCKED` (another relay takes other rows). A row both paths send (a slow
    ack past `claim_after`) reaches the stream once: JetStream drops the copy with the same Nats-Msg-Id
    inside its duplicate window, and consumers' inboxes drop anything later.
    """

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
        claim_after: float = 2.0,
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
        self._committed: list[_Committed] = []
        self._linger = settings.outbox_publish_linger_seconds
        self._claim_now = False
        self._published = metrics.OUTBOX_PUBLISHED.labels(service)
        self._service = service
        outbox = tables.outbox
        # Built once (the claim's size is fixed): SQLAlchemy reuses their cache keys and compiled forms.
        self._claim = (
            select(outbox.c.id, outbox.c.event_type, outbox.c.payload, outbox.c.headers, outbox.c.created_at)
            .where(
                outbox.c.published_at.is_(None),
                outbox.c.created_at < func.now() - literal(timedelta(seconds=claim_after)),
            )
            .order_by(outbox.c.created_at, outbox.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        self._mark = (
            update(outbox)
            .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(outbox.c.id.type))))
            .values(published_at=func.now(), attempts=outbox.c.attempts + 1)
        )

        # The rows this process committed: marked only while still unpublished (a claim may have won).
        self._mark_committed = self._mark.where(outbox.c.published_at.is_(None))

    def kick(self) -> None:
        """Claim now rather than at the next poll (what is due: older than `claim_after`)."""
        self._claim_now = True
        self._wake.set()

    def publish_now(self, rows: Sequence[dict[str, Any]]) -> None:
        """Outbox rows this process just committed (id, event_type, payload, headers): publish them on the
        next turn. Past MAX_COMMITTED waiting rows the rest are left to the claim (nothing is lost)."""
        room = MAX_COMMITTED - len(self._committed)
        now = utcnow()
        for row in rows[: max(0, room)]:
            self._committed.append(
                _Committed(row["id"], row["event_type"], row["payload"], dict(row["headers"]), now)
            )
        self._wake.set()

    async def publish_committed(self) -> int:
        """Publish the rows handed over by `publish_now` and mark the acked ones in one UPDATE (outside a
        transaction); a row without an ack stays for the claim. Returns how many were published; raises the
        first failure after marking the rest."""
        rows, self._committed = self._committed, []
        if not rows:
            return 0
        published, failure = await self._publish_acked(rows)
        if published:
            async with autocommit_connection(self._engine) as conn:
                await conn.execute(self._mark_committed, {"ids": published})
        return self._settle(published, failure)

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
            published, failure = await self._publish_acked(rows)
            # Mark what reached the stream even when another publish failed (this transaction commits).
            if published:
                await conn.execute(self._mark, {"ids": published})
        return self._settle(published, failure)

    async def _publish_acked(self, rows: Sequence[Any]) -> tuple[list[Any], BaseException | None]:
        """Publish the rows; the ids JetStream acknowledged, and the first failure (None when all went)."""
        acks = await self._publish_rows(rows)
        failed = [isinstance(ack, BaseException) for ack in acks]
        published = [row.id for row, bad in zip(rows, failed, strict=True) if not bad]
        return published, next((ack for ack, bad in zip(acks, failed, strict=True) if bad), None)

    def _settle(self, published: list[Any], failure: BaseException | None) -> int:
        """Count what was published (and marked); then raise the failure, if any."""
        self._published.inc(len(published))
        if failure is not None:
            raise failure
        return len(published)

    async def _publish_rows(self, rows: Sequence[Any]) -> list[Any]:
        """Send every row, then await all their acks (within `publish_timeout`): a PubAck or an error each.

        The sends go back to back without yielding to the event loop, so the client writes the whole batch to
        the socket at once (one send, not one per row); one deadline bounds them all, in case the client's
        window of unacknowledged publishes is full and a send has to wait.
        """
        futures: list[asyncio.Future[Any]] = []
        send_error: Exception | None = None
        try:
            async with asyncio.timeout(self._publish_timeout):
                for row in rows:
                    futures.append(await self._publish_row(row))
        except Exception as exc:  # noqa: BLE001 - not sent: this row and the rest wait for the next round
            send_error = exc
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
            # No wait_stall: the client would wrap every send in asyncio.wait_for (a task and a trip through
            # the event loop per row, so a socket write per row); the caller's deadline bounds a stall.
            return await self._js.publish_async(
                subject, row.payload, stream=self._settings.nats_stream, headers=headers
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
        """Publish until `stop` is set: committed rows at once, a claim every `poll_interval` (at once when
        kicked or when the last claim was full); back off while NATS or Postgres is unavailable."""
        loop = asyncio.get_running_loop()
        backoff = self._poll_interval
        next_claim = loop.time()
        while not stop.is_set():
            failed = False
            try:
                if self._committed:
                    if self._linger and len(self._committed) < self._batch_size:
                        await asyncio.sleep(self._linger)  # let the rows of concurrent commits join
                    await self.publish_committed()
                if self._claim_now or loop.time() >= next_claim:
                    self._claim_now = False
                    full = await self.publish_batch() >= self._batch_size
                    next_claim = loop.time() + (0.0 if full else self._poll_interval)
                backoff = self._poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep rows, retry later
                log.warning("outbox relay failed; will retry", error=str(exc), error_type=type(exc).__name__)
                failed = True
                backoff = min(backoff * 2, 5.0)
                next_claim = loop.time() + backoff
            if failed:  # rows stay in the outbox; new commits wait for the next attempt
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                continue
            self._wake.clear()
            if self._committed or self._claim_now or loop.time() >= next_claim:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_claim - loop.time()))
