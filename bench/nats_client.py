"""CPU per event through the NATS client, both ways the services use it, against the library's own path.

    .venv/bin/python bench/nats_client.py [--url nats://...:4222] [--messages 4000] [--batch 8] [--rounds 2]

- publish: the outbox relay's sends, `--batch` at a time with their acks awaited together: `publish_async`
  with `wait_stall` (the library wraps each send in `asyncio.wait_for`: a task and a trip through the event
  loop per message) against without it under one deadline for the batch (what the relay does).
- consume: `--messages` events already in a stream, fetched `--batch` at a time and acked one by one: the
  library's `PullSubscription.fetch` against `yummi_common.messaging.pull.PullConsumer` (what the consumer
  runtime uses).

Both take turns for `--rounds` rounds on a stream of their own (deleted afterwards) and report the process's
CPU time per message; compare the two within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import uvloop
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from yummi_common.messaging.pull import PullConsumer


async def publish_round(js: JetStreamContext, stream: str, subject: str, args: Any, *, stall: bool) -> None:
    """Send `args.messages` in batches of `args.batch`, awaiting each batch's acks together."""
    for start in range(0, args.messages, args.batch):
        futures: list[asyncio.Future[Any]] = []
        count = min(args.batch, args.messages - start)
        if stall:
            for _ in range(count):
                futures.append(await js.publish_async(subject, b"x" * 200, wait_stall=5.0, stream=stream))
        else:
            async with asyncio.timeout(5.0):
                for _ in range(count):
                    futures.append(await js.publish_async(subject, b"x" * 200, stream=stream))
        await asyncio.wait(futures, timeout=5.0)


async def consume_round(
    js: JetStreamContext, stream: str, subject: str, args: Any, *, library: bool
) -> Callable[[], Awaitable[None]]:
    """Bind a fresh durable consumer; return the timed part: fetch and ack every message."""
    durable = f"bench{uuid.uuid4().hex[:8]}"
    config = ConsumerConfig(
        durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=subject, max_ack_pending=1000
    )
    if library:
        sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)

        async def fetch(batch: int) -> list[Any]:
            return await sub.fetch(batch, timeout=1.0)

    else:
        consumer = await PullConsumer.bind(js, stream=stream, config=config)

        async def fetch(batch: int) -> list[Any]:
            return await consumer.fetch(batch, max_wait=1.0)

    async def drain() -> None:
        got = 0
        while got < args.messages:
            msgs = await fetch(args.batch)
            for msg in msgs:
                await msg.ack()
            got += len(msgs)

    return drain


async def timed(work: Callable[[], Awaitable[None]], messages: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    await work()
    return (time.process_time() - cpu) / messages * 1e6, messages / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    nc = await nats.connect(args.url)
    js = nc.jetstream()
    stream = f"BENCH_NATS_{uuid.uuid4().hex[:8].upper()}"
    prefix = f"benchnats{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
    print(f"messages {args.messages}, batch {args.batch}; CPU us per message (lower is better), msgs/s")
    try:
        for round_no in range(1, args.rounds + 1):
            for stall in (True, False):
                subject = f"{prefix}.pub.{round_no}.{stall}"
                send = functools.partial(publish_round, js, stream, subject, args, stall=stall)
                cpu, rate = await timed(send, args.messages)
                how = "publish_async(wait_stall=5)   " if stall else "publish_async, batch deadline"
                print(f"round {round_no}  publish  {how}  {cpu:7.1f} us  {rate:8.0f}/s")
            for library in (True, False):
                subject = f"{prefix}.sub.{round_no}.{library}"
                await publish_round(js, stream, subject, args, stall=False)
                drain = await consume_round(js, stream, subject, args, library=library)
                cpu, rate = await timed(drain, args.messages)
                how = "PullSubscription.fetch        " if library else "PullConsumer.fetch            "
                print(f"round {round_no}  consume  {how}  {cpu:7.1f} us  {rate:8.0f}/s")
    finally:
        await js.delete_stream(stream)
        await nc.close()


if __name__ == "__main__":
    uvloop.run(main())
