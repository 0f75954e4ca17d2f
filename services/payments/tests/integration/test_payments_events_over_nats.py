"""Consumers and outbox relay over a real NATS JetStream: one order in, one debit and one event out."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js.errors import NotFoundError

from yummi.events.v1 import events_pb2 as ev
from yummi_common.messaging.events import decode_body, subject_for
from yummi_common.service import Runtime
from yummi_common.timeutil import utcnow
from yummi_payments.adapters.tables import messaging, metadata
from yummi_payments.entrypoints.consumers import subscriptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_order_placed_over_nats_is_debited_once_and_announced_even_when_republished(settings, fund):
    suffix = uuid.uuid4().hex[:10]
    isolated = settings.model_copy(
        update={"nats_stream": f"PAYTEST_{suffix}", "nats_subject_prefix": f"paytest{suffix}.events"}
    )
    runtime = await Runtime.start(service="payments", settings=isolated, metadata=metadata, tables=messaging)
    assert runtime.js is not None and runtime.nc is not None
    try:
        runtime.start_consumers(subscriptions(runtime))
        outcomes: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

        user, order = uuid.uuid4(), uuid.uuid4()

        async def collect(msg) -> None:
            event_type = msg.headers["ce-type"]
            body = decode_body(event_type, msg.data)
            if body.order_id == str(order):  # the relay also publishes what other tests left in the outbox
                await outcomes.put((event_type, body))

        await runtime.nc.subscribe(f"{isolated.nats_subject_prefix}.payments.wallet.>", cb=collect)
        await fund(user, 5_000)
        body = ev.OrderPlaced(order_id=str(order), user_id=str(user), total_minor=1_250, currency="ZAR")
        event_id = str(uuid.uuid4())

        async def publish(ce_id: str, msg_id: str) -> None:
            headers = {
                "Nats-Msg-Id": msg_id,
                "ce-id": ce_id,
                "ce-type": "orders.order.placed",
                "ce-source": "yummi.orders",
                "ce-time": utcnow().isoformat(),
                "ce-specversion": "1.0",
            }
            await runtime.js.publish(
                subject_for(isolated.nats_subject_prefix, "orders.order.placed"),
                body.SerializeToString(),
                stream=isolated.nats_stream,
                headers=headers,
            )

        await publish(event_id, event_id)
        event_type, debited = await asyncio.wait_for(outcomes.get(), timeout=15)
        assert event_type == "payments.wallet.debited"
        assert (debited.order_id, debited.amount_minor, debited.balance_minor) == (str(order), 1_250, 3_750)

        await publish(
            event_id, str(uuid.uuid4())
        )  # same event id, past JetStream's dedupe: the inbox stops it
        new_id = str(uuid.uuid4())
        await publish(
            new_id, new_id
        )  # the same order under a new event id: the wallet's order record stops it
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(outcomes.get(), timeout=3)
    finally:
        await runtime.close()
        cleanup = await Runtime.start(
            service="payments", settings=isolated, metadata=metadata, tables=messaging
        )
        try:
            assert cleanup.js is not None
            await cleanup.js.delete_stream(isolated.nats_stream)
        except NotFoundError:
            pass
        finally:
            await cleanup.close()
