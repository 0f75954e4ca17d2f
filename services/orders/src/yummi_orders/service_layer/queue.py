"""The runner queue: claim the oldest queued order under a lease, keep it alive, ack it, sweep expiries.

A lease belongs to the runner that claimed it: heartbeats and acks from any other runner are PermissionDenied,
and any of them on an order that is no longer claimed is a Conflict. An ack repeated by the same runner with
the same outcome (a retry after a lost answer) returns the order unchanged. Until the sweeper has moved an
expired claim back to the queue its holder may still heartbeat or ack it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from yummi_common.logging import get_logger
from yummi_common.timeutil import isoformat
from yummi_orders.adapters import repository as repo
from yummi_orders.domain import orders as machine
from yummi_orders.domain.lines import check_notes, check_retailer, check_text, normalise_retailer
from yummi_orders.domain.orders import Order, OrderStatus
from yummi_orders.service_layer.ids import parse_order_id

log = get_logger(__name__)
MAX_RUNNER_ID_LENGTH = 128
MAX_RETAILER_REFERENCE_LENGTH = 128
RUNNER_FAILURE_REASON = "runner_reported_failure"
SWEEP_BATCH = 100


def _check_runner_id(runner_id: str) -> str:
    errors = check_text(runner_id, field="runner_id", max_length=MAX_RUNNER_ID_LENGTH, required=True)
    if errors:
        raise InvalidArgument("runner_id is not valid", errors=errors)
    return runner_id


def _check_holder(row: Any, runner_id: str) -> None:
    """Only the runner holding the lease of a claimed order may act on it."""
    if row.status != OrderStatus.CLAIMED.value:
        raise Conflict(f"order is {row.status}, not claimed")
    if row.runner_id != runner_id:
        raise PermissionDenied("another runner holds this order's lease")


async def claim_next_order(
    *, uow: UnitOfWork, runner_id: str, retailer: str = "", lease_seconds: int
) -> Order | None:
    """Lease the oldest queued order (of `retailer`, or any) to the runner; None when the queue is empty."""
    _check_runner_id(runner_id)
    if retailer:
        errors = check_retailer(retailer)
        if errors:
            raise InvalidArgument("retailer is not valid", errors=errors)
    row = await repo.claim_next_queued(
        uow.session,
        runner_id=runner_id,
        retailer=normalise_retailer(retailer) or None,
        lease_seconds=lease_seconds,
    )
    if row is None:
        return None
    await repo.add_event(
        uow.session,
        order_id=row.id,
        type="order.claimed",
        payload={"lease_expires_at": isoformat(row.lease_expires_at), "attempt": int(row.attempts) + 1},
    )
    await uow.commit()
    return await repo.load_order(uow.session, row.id)


async def heartbeat_order(*, uow: UnitOfWork, order_id: str, runner_id: str, lease_seconds: int) -> datetime:
    """Extend the lease of the runner's claimed order; returns the new expiry."""
    oid = parse_order_id(order_id)
    _check_runner_id(runner_id)
    row = await repo.get_order_row(uow.session, oid, lock=True)
    if row is None:
        raise NotFound("order not found")
    _check_holder(row, runner_id)
    updated = await repo.update_order(uow.session, oid, lease_expires_at=repo.lease_deadline(lease_seconds))
    await uow.commit()
    return updated.lease_expires_at  # type: ignore[no-any-return]


async def ack_order(
    *,
    uow: UnitOfWork,
    order_id: str,
    runner_id: str,
    outcome: str,
    notes: str = "",
    retailer_reference: str = "",
) -> Order:
    """Finish the runner's claimed order as completed or failed (emits orders.order.completed / .failed)."""
    oid = parse_order_id(order_id)
    _check_runner_id(runner_id)
    target = machine.ack_outcome(outcome)
    errors = check_notes(notes) + check_text(
        retailer_reference,
        field="retailer_reference",
        max_length=MAX_RETAILER_REFERENCE_LENGTH,
        required=False,
    )
    if errors:
        raise InvalidArgument("ack is not valid", errors=errors)
    row = await repo.get_order_row(uow.session, oid, lock=True)
    if row is None:
        raise NotFound("order not found")
    if row.status == target.value and row.runner_id == runner_id:
        return await _load(uow, oid)  # the same ack again: already done
    _check_holder(row, runner_id)
    status = machine.transition(row.status, target)
    reference = retailer_reference.strip() or None
    if status is OrderStatus.COMPLETED:
        await repo.update_order(
            uow.session, oid, status=status.value, lease_expires_at=None, retailer_reference=reference
        )
        await repo.add_event(
            uow.session,
            order_id=oid,
            type="order.completed",
            payload={"retailer_reference": reference, "notes": notes.strip()},
        )
        uow.emit(
            "orders.order.completed",
            events_pb2.OrderCompleted(
                order_id=str(oid),
                user_id=str(row.user_id),
                total_minor=int(row.total_minor),
                currency=row.currency,
                retailer_reference=reference or "",
            ),
        )
    else:
        reason = notes.strip() or RUNNER_FAILURE_REASON
        await repo.update_order(
            uow.session,
            oid,
            status=status.value,
            lease_expires_at=None,
            retailer_reference=reference,
            reason=reason,
        )
        await repo.add_event(uow.session, order_id=oid, type="order.failed", payload={"reason": reason})
        _emit_failed(uow, row, reason)
    await uow.commit()
    return await _load(uow, oid)


def _emit_failed(uow: UnitOfWork, row: Any, reason: str) -> None:
    """orders.order.failed: the order was paid for, so payments refunds it."""
    uow.emit(
        "orders.order.failed",
        events_pb2.OrderFailed(
            order_id=str(row.id),
            user_id=str(row.user_id),
            total_minor=int(row.total_minor),
            currency=row.currency,
            reason=reason,
        ),
    )


async def _load(uow: UnitOfWork, order_id: uuid.UUID) -> Order:
    order = await repo.load_order(uow.session, order_id)
    if order is None:  # pragma: no cover - locked above
        raise NotFound("order not found")
    return order


async def release_expired_leases(*, uow: UnitOfWork, max_attempts: int, limit: int = SWEEP_BATCH) -> int:
    """Requeue claims whose lease ran out, or fail them after `max_attempts` expiries; returns how many."""
    rows = await repo.expired_claims(uow.session, limit=limit)
    for row in rows:
        expiry = machine.expire_lease(
            current=row.status, attempts=int(row.attempts), max_attempts=max_attempts
        )
        if expiry.status is OrderStatus.QUEUED:
            await repo.update_order(
                uow.session,
                row.id,
                status=expiry.status.value,
                attempts=expiry.attempts,
                runner_id=None,
                lease_expires_at=None,
            )
            await repo.add_event(
                uow.session,
                order_id=row.id,
                type="order.requeued",
                payload={"reason": machine.LEASE_EXPIRED_REASON, "attempts": expiry.attempts},
            )
        else:
            reason = expiry.reason or machine.LEASE_EXPIRED_REASON
            await repo.update_order(
                uow.session,
                row.id,
                status=expiry.status.value,
                attempts=expiry.attempts,
                lease_expires_at=None,
                reason=reason,
            )
            await repo.add_event(
                uow.session,
                order_id=row.id,
                type="order.failed",
                payload={"reason": reason, "attempts": expiry.attempts},
            )
            _emit_failed(uow, row, reason)
        log.warning(
            "order lease expired", order_id=str(row.id), attempts=expiry.attempts, status=expiry.status.value
        )
    await uow.commit()
    return len(rows)
