"""The consumer runtime: durable JetStream pull consumers whose handlers run once per event (inbox)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import CTE, Table, bindparam, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_common import metrics, telemetry
from yummi_common.context import request_id
from yummi_common.db import UnitOfWork, UnitOfWorkFactory
from yummi_common.logging import get_logger
from yummi_common.messaging.events import EVENT_TYPES, Event, decode_body, subject_for
from yummi_common.messaging.pull import PullConsumer
from yummi_common.messaging.tables import MessagingTables
from yummi_common.settings import Settings

log = get_logger(__name__)

Handler = Callable[[UnitOfWork, Event], Awaitable[None]]


@dataclass(frozen=True)
class InboxClaim:
    """The inbox row of one event for one consumer, for a handler that writes it in its own first statement.

    Such a handler (`Subscription(claims_inbox=True)`) saves the runtime's separate inbox INSERT: it puts
    `inbox_claim_cte(...)` into its first statement, bound with `params()`, does its work only when the CTE
    returned a row (the event is new to this consumer), and returns whether it did.
    """

    event_id: uuid.UUID
    consumer: str
    event_type: str

    def params(self) -> dict[str, Any]:
        return {
            "inbox_event_id": self.event_id,
            "inbox_consumer": self.consumer,
            "inbox_event_type": self.event_type,
        }


ClaimingHandler = Callable[[UnitOfWork, Event, InboxClaim], Awaitable[bool]]
# Applies a fetched batch of events at once (each with its claim); returns, per event, whether it was new.
BatchHandler = Callable[[UnitOfWork, list[tuple[Event, InboxClaim]]], Awaitable[list[bool]]]


def inbox_claim_cte(inbox: Table, name: str = "claimed") -> CTE:
    """INSERT of the event's inbox row as a CTE (`InboxClaim.params` names): one row back when the event is
    new to the consumer, none when it was applied before (a concurrent claim waits for the first to end)."""
    return (
        pg_insert(inbox)
        .values(
            event_id=bindparam("inbox_event_id"),
            consumer=bindparam("inbox_consumer"),
            event_type=bindparam("inbox_event_type"),
        )
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
        .cte(name)
    )


@dataclass(frozen=True)
class Subscription:
    """One handler for one event type; `name` makes the durable consumer `{service}-{name}`.

    By default the runtime inserts the inbox row and runs `handler(uow, event)` only for a new event, then
    commits. With `claims_inbox` the handler is a `ClaimingHandler` that claims the event itself (see
    `InboxClaim`); the runtime commits what it left open when it returns True.
    """

    event_type: str
    handler: Handler | ClaimingHandler
    name: str
    claims_inbox: bool = False
    # With claims_inbox: handles every message of a fetch in one go (one unit of work, committed before the
    # messages are acked). When it fails, the runtime applies the batch's events one by one with `handler`,
    # so one bad event is retried and dead-lettered alone.
    batch: BatchHandler | None = None


class PermanentEventError(Exception):
    """The event can never be handled (bad body): dead-letter it at once instead of redelivering."""


class ConsumerRuntime:
    """Runs every subscription of a service; each event is applied in one transaction with its inbox row."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        uow_factory: UnitOfWorkFactory,
        tables: MessagingTables,
        js: JetStreamContext,
        settings: Settings,
        subscriptions: list[Subscription],
        max_deliver: int = 8,
        ack_wait: float = 30.0,
        batch: int = 64,
        concurrency: int | None = None,
    ) -> None:
        for sub in subscriptions:
            if sub.event_type not in EVENT_TYPES:
                raise ValueError(f"unknown event type {sub.event_type!r}")
        self._service = service
        self._engine = engine
        self._uow_factory = uow_factory
        self._tables = tables
        self._js = js
        self._settings = settings
        self._subscriptions = subscriptions
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._batch = batch
        self._concurrency = max(1, concurrency or settings.consumer_concurrency)
        self._linger = settings.consumer_batch_linger_seconds
        # The bound is per process, across its subscriptions: each message holds a pooled connection.
        self._slots = asyncio.Semaphore(self._concurrency)
        # Built once: SQLAlchemy reuses its cache key and compiled form for every message.
        self._inbox_insert = (
            pg_insert(tables.inbox)
            .values(
                event_id=bindparam("event_id"),
                consumer=bindparam("consumer"),
                event_type=bindparam("event_type"),
            )
            .on_conflict_do_nothing()
            .returning(tables.inbox.c.event_id)
        )

    def durable_name(self, sub: Subscription) -> str:
        return f"{self._service}-{sub.name}".replace(".", "_")

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle messages for every subscription until `stop` is set."""
        await asyncio.gather(*(self._run_one(sub, stop) for sub in self._subscriptions))

    async def _run_one(self, sub: Subscription, stop: asyncio.Event) -> None:
        """Pull for one subscription and handle its messages side by side (`consumer_concurrency` at most).

        Each message is still applied in its own transaction with its inbox row and acked after its commit, so
        handling a batch side by side changes nothing about exactly-once; it only stops one slow round trip
        from holding up the rest. The next fetch asks for as many messages as there are free slots.
        """
        subject = subject_for(self._settings.nats_subject_prefix, sub.event_type)
        durable = self.durable_name(sub)
        batched = sub.batch is not None and sub.claims_inbox
        limit = 2 if batched else self._concurrency  # batches in flight, or single messages
        in_flight: set[asyncio.Task[None]] = set()
        psub = None
        try:
            while not stop.is_set():
                try:
                    # Refill once half the slots are free: one fetch brings several messages, not one each.
                    if len(in_flight) > limit // 2:
                        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    if psub is None:
                        psub = await PullConsumer.bind(
                            self._js,
                            stream=self._settings.nats_stream,
                            config=ConsumerConfig(
                                durable_name=durable,
                                ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL,
                                ack_wait=self._ack_wait,
                                max_deliver=self._max_deliver + 1,
                                filter_subject=subject,
                                max_ack_pending=1000,
                            ),
                        )
                    if batched and self._linger:
                        await asyncio.sleep(self._linger)  # let events gather: one batch for several
                    wanted = self._batch if batched else min(self._batch, limit - len(in_flight))
                    try:
                        msgs = await psub.fetch(wanted, max_wait=1.0)
                    except TimeoutError:  # nothing came within the fetch's wait
                        continue
                    if batched and len(msgs) > 1:
                        jobs = [functools.partial(self.handle_batch, sub, msgs)]
                    else:
                        jobs = [functools.partial(self.handle_message, sub, msg) for msg in msgs]
                    tasks = [asyncio.create_task(self._guarded(job, durable)) for job in jobs]
                    for task in tasks:
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - NATS or Postgres away: wait and go on
                    log.warning("consumer loop error; retrying", consumer=durable, error=str(exc))
                    if psub is not None:
                        await psub.close()
                    psub = None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
            if in_flight:  # stopping: let the messages already taken finish (each is short)
                await asyncio.wait(in_flight, timeout=self._ack_wait)
        finally:
            for task in in_flight:
                task.cancel()
            if psub is not None:
                await psub.close()

    async def _guarded(self, handling: Callable[[], Awaitable[None]], durable: str) -> None:
        """Handle a message or a batch in a slot; an error outside the handlers (an ack lost with NATS) means
        redelivery after ack_wait."""
        try:
            async with self._slots:
                await handling()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the messages are redelivered after ack_wait
            log.warning("message handling error; left for redelivery", consumer=durable, error=str(exc))

    async def handle_batch(self, sub: Subscription, msgs: list[Msg]) -> None:
        """Apply fetched messages with the subscription's batch handler, then ack them; when the batch fails,
        apply them one by one (each with its own retries and dead letter)."""
        assert sub.batch is not None  # noqa: S101 - only batch subscriptions come here
        durable = self.durable_name(sub)
        decoded: list[tuple[Msg, Event]] = []
        for msg in msgs:
            headers = dict(msg.headers or {})
            deliveries = msg.metadata.num_delivered if msg.metadata else 1
            if deliveries > 1:  # a redelivery goes alone: it failed before, maybe in a batch
                await self.handle_message(sub, msg)
                continue
            try:
                decoded.append((msg, self._decode(sub, msg, headers, deliveries)))
            except PermanentEventError as exc:
                await self._dead_letter(durable, msg, headers, deliveries, str(exc))
                await msg.term()
                metrics.EVENTS_HANDLED.labels(durable, "dead_lettered").inc()
        if not decoded:
            return
        started = time.perf_counter()
        try:
            async with self._uow_factory() as uow:
                applied = await sub.batch(
                    uow,
                    [(event, InboxClaim(event.id, durable, event.type)) for _, event in decoded],
                )
                if uow.session.in_transaction():
                    await uow.commit()
        except Exception as exc:  # noqa: BLE001 - nothing of the batch was applied: one by one instead
            log.warning(
                "event batch failed; applying its events one by one",
                consumer=durable,
                events=len(decoded),
                error=str(exc),
            )
            for msg, _ in decoded:
                await self.handle_message(sub, msg)
            return
        finally:
            metrics.EVENT_HANDLING_SECONDS.labels(durable).observe(time.perf_counter() - started)
        for (msg, _), new in zip(decoded, applied, strict=True):
            await msg.ack()
            metrics.EVENTS_HANDLED.labels(durable, "applied" if new else "duplicate").inc()

    async def handle_message(self, sub: Subscription, msg: Msg) -> None:
        """Apply one message exactly once: inbox insert + handler in one transaction, then ack."""
        durable = self.durable_name(sub)
        headers = dict(msg.headers or {})
        deliveries = msg.metadata.num_delivered if msg.metadata else 1
        if deliveries > 1:
            metrics.EVENTS_REDELIVERED.labels(durable).inc()
        # The consumer's span continues the producer's trace (traceparent in the headers).
        with telemetry.continue_trace(
            f"process {sub.event_type}",
            carrier=headers,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": durable,
                "messaging.message.id": headers.get("ce-id", ""),
                "messaging.message.delivery_count": deliveries,
            },
        ) as span:
            outcome = await self._apply(sub, msg, durable, headers, deliveries)
            if span is not None and outcome in ("failed", "dead_lettered"):
                span.set_status(Status(StatusCode.ERROR, outcome))

    async def _apply(
        self, sub: Subscription, msg: Msg, durable: str, headers: dict[str, str], deliveries: int
    ) -> str:
        try:
            event = self._decode(sub, msg, headers, deliveries)
        except PermanentEventError as exc:
            await self._dead_letter(durable, msg, headers, deliveries, str(exc))
            await msg.term()
            metrics.EVENTS_HANDLED.labels(durable, "dead_lettered").inc()
            return "dead_lettered"
        token = request_id.set(event.request_id)
        started = time.perf_counter()
        outcome = "applied"
        try:
            async with self._uow_factory() as uow:
                if sub.claims_inbox:
                    claim = InboxClaim(event_id=event.id, consumer=durable, event_type=event.type)
                    applied = await cast(ClaimingHandler, sub.handler)(uow, event, claim)
                    if applied and uow.session.in_transaction():
                        await uow.commit()
                else:
                    inserted = await uow.session.execute(
                        self._inbox_insert,
                        {"event_id": event.id, "consumer": durable, "event_type": event.type},
                    )
                    applied = inserted.first() is not None
                    if applied:
                        await cast(Handler, sub.handler)(uow, event)
                        await uow.commit()
                if not applied:
                    outcome = "duplicate"
                    log.info("duplicate event ignored", consumer=durable, event_id=str(event.id))
            await msg.ack()
        except Exception as exc:  # noqa: BLE001 - redeliver with backoff, dead-letter after max_deliver
            outcome = "failed"
            log.warning(
                "event handler failed",
                consumer=durable,
                event_id=str(event.id),
                deliveries=deliveries,
                error=str(exc),
            )
            if deliveries >= self._max_deliver:
                await self._dead_letter(durable, msg, headers, deliveries, f"{type(exc).__name__}: {exc}")
                await msg.term()
                outcome = "dead_lettered"
            else:
                await msg.nak(delay=min(0.2 * 2**deliveries, 30.0))
        finally:
            metrics.EVENT_HANDLING_SECONDS.labels(durable).observe(time.perf_counter() - started)
            request_id.reset(token)
        metrics.EVENTS_HANDLED.labels(durable, outcome).inc()
        return outcome

    def _decode(self, sub: Subscription, msg: Msg, headers: dict[str, str], deliveries: int) -> Event:
        event_type = headers.get("ce-type", sub.event_type)
        if event_type != sub.event_type:
            raise PermanentEventError(f"unexpected ce-type {event_type!r}")
        raw_id = headers.get("ce-id") or headers.get("Nats-Msg-Id")
        try:
            event_id = uuid.UUID(str(raw_id))
            body = decode_body(event_type, msg.data)
        except Exception as exc:  # noqa: BLE001
            raise PermanentEventError(f"undecodable event: {exc}") from exc
        time = None
        with contextlib.suppress(ValueError, KeyError):
            time = datetime.fromisoformat(headers["ce-time"])
        return Event(
            id=event_id,
            type=event_type,
            source=headers.get("ce-source", ""),
            time=time,
            body=body,
            request_id=headers.get("x-request-id"),
            traceparent=headers.get("traceparent"),
            headers=headers,
            deliveries=deliveries,
        )

    async def _dead_letter(
        self, consumer: str, msg: Msg, headers: dict[str, str], deliveries: int, error: str
    ) -> None:
        log.error("event dead-lettered", consumer=consumer, subject=msg.subject, error=error)
        metrics.EVENTS_DEAD_LETTERED.labels(consumer).inc()
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(self._tables.dead_letters).values(
                    id=uuid.uuid4(),
                    event_id=headers.get("ce-id"),
                    consumer=consumer,
                    event_type=headers.get("ce-type"),
                    subject=msg.subject,
                    payload=msg.data,
                    headers=headers,
                    error=error[:2000],
                    deliveries=deliveries,
                )
            )
