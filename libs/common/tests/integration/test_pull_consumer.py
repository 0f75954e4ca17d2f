"""The pull consumer on a real JetStream: what is there comes back at once, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError

from yummi_common.messaging.pull import ConsumerGoneError, PullConsumer

pytestmark = pytest.mark.integration


@dataclass
class Stream:
    nc: Client
    js: JetStreamContext
    name: str
    subject: str

    async def publish(self, count: int, start: int = 0) -> None:
        for n in range(start, start + count):
            await self.js.publish(self.subject, str(n).encode(), stream=self.name)

    @contextlib.asynccontextmanager
    async def bound(self, durable: str = "worker", ack_wait: float = 30.0) -> AsyncIterator[PullConsumer]:
        """A pull consumer of the stream's subject (the durable created when missing), closed when the block
        ends."""
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=self.subject,
            ack_wait=ack_wait,
        )
        consumer = await PullConsumer.bind(self.js, stream=self.name, config=config)
        try:
            yield consumer
        finally:
            await consumer.close()


@pytest.fixture
async def stream() -> AsyncIterator[Stream]:
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:10]
    name = f"PULLTEST_{tag.upper()}"
    await js.add_stream(name=name, subjects=[f"pulltest{tag}.>"])
    try:
        yield Stream(nc, js, name, f"pulltest{tag}.events")
    finally:
        await js.delete_stream(name)
        await nc.close()


def _bodies(msgs: list[object]) -> list[int]:
    return [int(m.data) for m in msgs]  # type: ignore[attr-defined]


async def test_a_fetch_returns_what_is_there_up_to_the_batch(stream: Stream) -> None:
    await stream.publish(10)
    async with stream.bound() as consumer:
        first = await consumer.fetch(4, max_wait=5.0)
        rest = await consumer.fetch(64, max_wait=5.0)  # six are there: it does not wait for 64
        assert _bodies(first) == [0, 1, 2, 3]
        assert _bodies(rest) == [4, 5, 6, 7, 8, 9]
        for msg in first + rest:
            await msg.ack()
        with pytest.raises(TimeoutError):
            await consumer.fetch(8, max_wait=0.3)


async def test_an_event_that_wakes_an_idle_consumer_is_returned_without_waiting_for_a_full_batch(
    stream: Stream,
) -> None:
    async with stream.bound() as consumer:
        waiting = asyncio.create_task(consumer.fetch(64, max_wait=60.0))
        await asyncio.sleep(0.2)  # the fetch is waiting on the server
        await stream.publish(1)
        # The client library's fetch would hold this message until 63 more came or 60 s passed.
        msgs = await asyncio.wait_for(waiting, timeout=10.0)
        assert _bodies(msgs) == [0]
        await msgs[0].ack()


async def test_every_message_is_returned_once_while_fetches_give_up_and_start_again(stream: Stream) -> None:
    """Fetches that end while messages are still on their way (short waits, small batches) lose none of them:
    a late arrival waits for the next fetch; each message is returned exactly once."""
    seen: list[int] = []
    total = 300

    async def produce() -> None:
        for start in range(0, total, 10):
            await stream.publish(10, start)
            await asyncio.sleep(0.005)

    async with stream.bound() as consumer:
        producer = asyncio.create_task(produce())
        try:
            async with asyncio.timeout(60):  # a lost message would leave this loop waiting
                while len(seen) < total:
                    try:
                        msgs = await consumer.fetch(7, max_wait=0.05)
                    except TimeoutError:
                        continue
                    seen += _bodies(msgs)
                    for msg in msgs:
                        await msg.ack()
            await producer
            with pytest.raises(TimeoutError):
                extra = await consumer.fetch(8, max_wait=0.5)
                seen += _bodies(extra)
        finally:
            producer.cancel()
    assert sorted(seen) == list(range(total))


async def test_an_unacked_message_comes_back_after_the_ack_wait(stream: Stream) -> None:
    await stream.publish(1)
    async with stream.bound(ack_wait=1.0) as consumer:
        (first,) = await consumer.fetch(8, max_wait=5.0)
        (again,) = await consumer.fetch(8, max_wait=10.0)  # not acked: redelivered
        assert again.data == first.data
        assert again.metadata.num_delivered == 2
        await again.ack()


async def test_binding_keeps_an_existing_consumer_and_its_position(stream: Stream) -> None:
    await stream.publish(3)
    async with stream.bound() as consumer:
        (msg,) = await consumer.fetch(1, max_wait=5.0)
        await msg.ack()
    async with stream.bound() as again:  # the same durable: it goes on after the acked message
        assert _bodies(await again.fetch(8, max_wait=5.0)) == [1, 2]


async def test_a_consumer_deleted_while_a_fetch_waits_is_an_error_for_the_caller_to_bind_again(
    stream: Stream,
) -> None:
    async with stream.bound() as consumer:
        waiting = asyncio.create_task(consumer.fetch(8, max_wait=10.0))
        await asyncio.sleep(0.3)
        await stream.js.delete_consumer(stream.name, "worker")
        with pytest.raises(APIError):  # 409 Consumer Deleted
            await waiting


async def test_a_consumer_deleted_between_fetches_is_an_error_and_binding_again_recreates_it(
    stream: Stream,
) -> None:
    async with stream.bound() as consumer:
        await stream.js.delete_consumer(stream.name, "worker")
        with pytest.raises(ConsumerGoneError):  # the server does not answer requests to a missing consumer
            await consumer.fetch(8, max_wait=1.0)
    await stream.publish(2)
    async with stream.bound() as again:
        assert _bodies(await again.fetch(8, max_wait=5.0)) == [0, 1]


async def test_a_lost_answer_is_a_timeout_while_the_consumer_is_still_there(stream: Stream) -> None:
    async with stream.bound() as consumer:
        await consumer.close()  # answers now go nowhere, as if lost in a reconnect
        with pytest.raises(TimeoutError):
            await consumer.fetch(8, max_wait=0.5)
