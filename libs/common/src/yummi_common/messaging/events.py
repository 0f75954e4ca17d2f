"""The event catalogue: each event type, its protobuf body, and the NATS subject it travels on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf.message import Message

from yummi.events.v1 import events_pb2 as ev

EVENT_TYPES: dict[str, type[Message]] = {
    "catalog.dataset.activated": ev.DatasetActivated,
    "orders.order.placed": ev.OrderPlaced,
    "orders.order.cancelled": ev.OrderCancelled,
    "orders.order.failed": ev.OrderFailed,
    "orders.order.completed": ev.OrderCompleted,
    "payments.payment.credited": ev.PaymentCredited,
    "payments.wallet.debited": ev.WalletDebited,
    "payments.wallet.debit_rejected": ev.WalletDebitRejected,
    "payments.wallet.refunded": ev.WalletRefunded,
    "identity.user.erased": ev.UserErased,
    "identity.user.erasure_completed": ev.UserErasureCompleted,
}


def check_event_body(event_type: str, body: Message) -> None:
    """Refuse an unknown event type or a body of the wrong message type (a programming error)."""
    expected = EVENT_TYPES.get(event_type)
    if expected is None:
        raise ValueError(f"unknown event type {event_type!r}")
    if not isinstance(body, expected):
        raise TypeError(f"{event_type} carries {expected.__name__}, not {type(body).__name__}")


def subject_for(prefix: str, event_type: str) -> str:
    return f"{prefix}.{event_type}"


def decode_body(event_type: str, payload: bytes) -> Message:
    message = EVENT_TYPES[event_type]()
    message.ParseFromString(payload)
    return message


@dataclass(frozen=True)
class Event:
    """An event as a consumer sees it: CloudEvents attributes plus the decoded body."""

    id: uuid.UUID
    type: str
    source: str
    time: datetime | None
    body: Message
    request_id: str | None = None
    traceparent: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    deliveries: int = 1
