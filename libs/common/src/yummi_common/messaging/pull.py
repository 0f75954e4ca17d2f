"""A pull consumer of a durable JetStream consumer that returns what is there as soon as it is there.

The client library's `PullSubscription.fetch(n)` waits, once it has had to ask the server to wait for
messages, until all `n` have arrived or the request expires: with a batch of 64 and events arriving at 200/s,
an event that wakes an idle consumer waits about 300 ms for 63 more. It also runs two tasks per message it
returns. This one asks for what is available without waiting (`no_wait`) and comes back with it; only when
there is nothing does it wait, for one message, and then asks for the rest of the batch without waiting.
Messages come in through one subscription on a private inbox; every message that arrives is returned by some
fetch (a late one waits in the buffer for the next), so nothing a fetch gave up on is lost: unacked, it is
redelivered anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, Header, StatusCode
from nats.js.errors import APIError, NotFoundError

# Statuses that end a pull request without an error (nothing there, expired, or a request the server dropped:
# too many waiting, a leadership change); any other status is raised.
_ENDS_REQUEST = frozenset({StatusCode.NO_MESSAGES, StatusCode.REQUEST_TIMEOUT, StatusCode.CONFLICT})


class PullConsumer:
    """Fetches batches from one durable consumer (created with `config` when it does not exist)."""

    def __init__(
        self, js: JetStreamContext, nc: Client, *, stream: str, durable: str, api_prefix: str = "$JS.API"
    ) -> None:
        self._js = js
        self._nc = nc
        self._stream = stream
        self._durable = durable
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: deque[Msg] = deque()
        self._arrival: asyncio.Future[None] | None = None

    @classmethod
    async def bind(cls, js: JetStreamContext, *, stream: str, config: ConsumerConfig) -> PullConsumer:
        """Create the durable consumer unless it exists, and subscribe to the inbox its messages come to (on
        the connection the JetStream context speaks over)."""
        nc: Client = js._nc
        durable = config.durable_name
        if not durable:
            raise ValueError("a durable consumer needs durable_name")
        try:
            await js.consumer_info(stream, durable)
        except NotFoundError:
            await js.add_consumer(stream, config=config)
        consumer = cls(js, nc, stream=stream, durable=durable)
        consumer._sub = await nc.subscribe(consumer._inbox, cb=consumer._on_message)
        return consumer

    async def _on_message(self, msg: Msg) -> None:
        self._buffer.append(msg)
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)

    async def close(self) -> None:
        """Stop receiving (what was delivered and not acked is redelivered after the consumer's ack wait)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def fetch(self, batch: int, max_wait: float) -> list[Msg]:
        """Up to `batch` messages: those already delivered, then what the consumer has now; when it has none,
        wait up to `max_wait` for the first and take what came with it. TimeoutError when none came."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        msgs = await self._available(batch, max_wait)
        if msgs:
            return msgs
        msgs = await self._request(1, max_wait, wait=True)
        if not msgs:
            raise TimeoutError("no message within max_wait")
        if batch > 1:  # the first one woke us: take what arrived beside it
            msgs += await self._available(batch - 1, max_wait)
        return msgs

    async def _available(self, limit: int, max_wait: float) -> list[Msg]:
        """Up to `limit` messages without waiting for new ones: those delivered already, then what the
        consumer has now."""
        msgs = self._take_buffered(limit)
        if len(msgs) < limit:
            msgs += await self._request(limit - len(msgs), max_wait, wait=False)
        return msgs

    def _take_buffered(self, limit: int) -> list[Msg]:
        """Messages already delivered (a request's late arrivals), without statuses of ended requests."""
        taken: list[Msg] = []
        while self._buffer and len(taken) < limit:
            msg = self._buffer.popleft()
            if not _status(msg):
                taken.append(msg)
        return taken

    async def _request(self, batch: int, max_wait: float, *, wait: bool) -> list[Msg]:
        """One pull request; its messages until the batch is full or a status ends it (or `max_wait`).

        A waiting request expires on the server a little before `max_wait` (it answers 408). One that gets no
        answer at all went to a consumer that is not there (deleted, or its stream recreated) or was lost on
        the way (a reconnect, or an answer not read yet on a starved process): the consumer is looked up, and
        when it is gone ConsumerGoneError tells the caller to bind again.
        """
        request: dict[str, object] = {"batch": batch}
        if wait:
            margin = min(max(0.05, max_wait * 0.1), max_wait / 2)
            request["expires"] = max(1, int((max_wait - margin) * 1e9))  # a 408 comes before our deadline
        else:
            request["no_wait"] = True  # what is there now; 404 when not all of the batch was
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        got: list[Msg] = []
        answered = False
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(max_wait):
                while len(got) < batch:
                    while not self._buffer:
                        self._arrival = loop.create_future()
                        try:
                            await self._arrival
                        finally:
                            self._arrival = None
                    msg = self._buffer.popleft()
                    answered = True
                    status = _status(msg)
                    if not status:
                        got.append(msg)
                    elif status in _ENDS_REQUEST:
                        description = (msg.headers or {}).get(Header.DESCRIPTION, "")
                        if status == StatusCode.CONFLICT and "deleted" in description.lower():
                            raise APIError.from_msg(msg)  # the consumer is gone: the caller binds again
                        break
                    elif status != StatusCode.CONTROL_MESSAGE:
                        raise APIError.from_msg(msg)
        except TimeoutError:
            # The request's messages so far (a late one waits in the buffer for the next fetch).
            if wait and not answered:
                await self._check_exists()
        return got

    async def _check_exists(self) -> None:
        try:
            await self._js.consumer_info(self._stream, self._durable)
        except NotFoundError as exc:
            raise ConsumerGoneError(f"consumer {self._durable} of stream {self._stream} is gone") from exc


class ConsumerGoneError(Exception):
    """A waiting pull request had no answer, not even its expiry: the consumer is not there any more."""


def _status(msg: Msg) -> str | None:
    return msg.headers.get(Header.STATUS) if msg.headers else None
