"""The order state machine: the one place that says which status may follow which, and what lease expiry does.

```
pending_payment ──debited──► queued ──claim──► claimed ──ack──► completed | failed
       │                       ▲                  │
       ├──debit_rejected──► rejected              └──lease expired──► queued (attempts + 1)
       │                                                             or failed once attempts reach the limit
       └──cancel──► cancelled ◄──cancel── queued
```

`failed` doubles as the dead-letter status: an order whose runner leases expired `max_attempts` times
(setting ORDER_MAX_ATTEMPTS, default 5) is failed with reason `lease_expired`, and `orders.order.failed`
tells payments to refund it like any other failure.
Every transition not drawn above raises `Conflict` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from yummi_common.errors import Conflict, InvalidArgument


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    QUEUED = "queued"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_PAYMENT: frozenset({OrderStatus.QUEUED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
    OrderStatus.QUEUED: frozenset({OrderStatus.CLAIMED, OrderStatus.CANCELLED}),
    OrderStatus.CLAIMED: frozenset({OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.QUEUED}),
    OrderStatus.COMPLETED: frozenset(),
    OrderStatus.FAILED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
TERMINAL_STATUSES = frozenset(status for status, nexts in ALLOWED_TRANSITIONS.items() if not nexts)
CANCELLABLE_STATUSES = frozenset(
    s for s, nexts in ALLOWED_TRANSITIONS.items() if OrderStatus.CANCELLED in nexts
)
ACK_OUTCOMES = frozenset({OrderStatus.COMPLETED, OrderStatus.FAILED})
DEFAULT_MAX_ATTEMPTS = 5
LEASE_EXPIRED_REASON = "lease_expired"


def parse_status(value: str) -> OrderStatus:
    """The status named by `value` (a stored or requested string); ValueError when it is not one."""
    return OrderStatus(value)


def can_transition(current: OrderStatus | str, target: OrderStatus | str) -> bool:
    """Whether the machine allows moving from `current` to `target`."""
    return OrderStatus(target) in ALLOWED_TRANSITIONS[OrderStatus(current)]


def transition(current: OrderStatus | str, target: OrderStatus | str) -> OrderStatus:
    """The new status when `current → target` is allowed; Conflict otherwise."""
    if not can_transition(current, target):
        raise Conflict(f"order cannot go from {OrderStatus(current).value} to {OrderStatus(target).value}")
    return OrderStatus(target)


def cancel(current: OrderStatus | str) -> OrderStatus:
    """Cancel an order: only while it waits for payment or for a runner."""
    if OrderStatus(current) not in CANCELLABLE_STATUSES:
        raise Conflict(f"an order that is {OrderStatus(current).value} can no longer be cancelled")
    return OrderStatus.CANCELLED


@dataclass(frozen=True)
class LeaseExpiry:
    """What a lease expiry does to a claimed order: back to the queue, or failed when out of attempts."""

    status: OrderStatus
    attempts: int
    reason: str | None


def expire_lease(*, current: OrderStatus | str, attempts: int, max_attempts: int) -> LeaseExpiry:
    """Apply a lease expiry: `attempts` counts expired leases; reaching `max_attempts` fails the order."""
    if OrderStatus(current) is not OrderStatus.CLAIMED:
        raise Conflict(f"only a claimed order has a lease, not a {OrderStatus(current).value} one")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    spent = attempts + 1
    if spent >= max_attempts:
        return LeaseExpiry(transition(current, OrderStatus.FAILED), spent, LEASE_EXPIRED_REASON)
    return LeaseExpiry(transition(current, OrderStatus.QUEUED), spent, None)


def ack_outcome(value: str) -> OrderStatus:
    """The status a runner's ack asks for (`completed` or `failed`)."""
    try:
        outcome = OrderStatus(value)
    except ValueError:
        outcome = None
    if outcome is None or outcome not in ACK_OUTCOMES:
        raise InvalidArgument(
            "outcome must be completed or failed",
            errors=[{"field": "outcome", "message": "must be completed or failed"}],
        )
    return outcome


@dataclass(frozen=True)
class OrderLine:
    """One priced line as the order stores it (prices as they were when the order was placed)."""

    product_id: str
    title: str
    quantity: int
    unit_price_minor: int
    catalog_id: str = ""

    @property
    def line_total_minor(self) -> int:
        return self.unit_price_minor * self.quantity

    def to_json(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "catalog_id": self.catalog_id,
            "title": self.title,
            "quantity": self.quantity,
            "unit_price_minor": self.unit_price_minor,
            "line_total_minor": self.line_total_minor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderLine:
        return cls(
            product_id=str(data["product_id"]),
            title=str(data.get("title", "")),
            quantity=int(data["quantity"]),
            unit_price_minor=int(data["unit_price_minor"]),
            catalog_id=str(data.get("catalog_id", "")),
        )


def order_total(lines: list[OrderLine]) -> int:
    return sum(line.line_total_minor for line in lines)


@dataclass(frozen=True)
class OrderEvent:
    """One entry of an order's history, as the owner sees it."""

    type: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Order:
    """An order as read from storage."""

    id: Any
    user_id: Any
    status: OrderStatus
    retailer: str
    items: list[OrderLine]
    total_minor: int
    currency: str
    notes: str
    created_at: datetime
    updated_at: datetime
    runner_id: str | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0
    retailer_reference: str | None = None
    reason: str | None = None
    events: list[OrderEvent] = field(default_factory=list)
