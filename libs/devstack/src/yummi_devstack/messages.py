"""A stand-in for a JetStream message, to drive the consumer runtime's handlers directly in tests
(`ConsumerRuntime.handle_message` / `handle_batch`) and see how each message was settled."""

from __future__ import annotations

import uuid
from types import SimpleNamespace


class FakeMsg:
    """Just enough of a `nats.aio.msg.Msg`: subject, data, headers, delivery count, and the settlement."""

    def __init__(self, subject: str, data: bytes, headers: dict[str, str], *, deliveries: int = 1) -> None:
        self.subject = subject
        self.data = data
        self.headers = headers
        self.metadata = SimpleNamespace(num_delivered=deliveries)
        self.outcome: str | None = None  # ack, nak or term

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nak(self, delay: float | None = None) -> None:
        self.outcome = "nak"

    async def term(self) -> None:
        self.outcome = "term"


def event_message(event_id: uuid.UUID, event_type: str, body: bytes, *, prefix: str = "test") -> FakeMsg:
    """An event as a relay publishes it: CloudEvents headers, Nats-Msg-Id = event id."""
    headers = {"ce-id": str(event_id), "ce-type": event_type, "Nats-Msg-Id": str(event_id)}
    return FakeMsg(f"{prefix}.{event_type}", body, headers)
