"""The client's Idempotency-Key kept on the order: one order per (user, key), even once the gateway forgot it.

The gateway replays its own record of a keyed request; this is the ground truth behind it. An order stores the
key and a fingerprint of the request it came with. A retry with the same key and request answers the order
already placed (as it is now) without writing anything; the same key with another request is refused (422).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from yummi_common.db import UnitOfWork
from yummi_common.errors import Conflict, InvalidArgument
from yummi_orders.adapters import repository as repo
from yummi_orders.domain.orders import Order

FIELD = "Idempotency-Key"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    fingerprint: str


def idempotency_key(raw: str, *, request: dict[str, Any]) -> IdempotencyKey | None:
    """The key (None when the caller sent none) with the fingerprint of the canonical `request`."""
    if not raw:
        return None
    if not _KEY.fullmatch(raw) or not raw.strip():
        raise InvalidArgument(
            "Idempotency-Key is not valid",
            errors=[{"field": FIELD, "message": "must be 1 to 255 printable ASCII characters"}],
        )
    canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    return IdempotencyKey(key=raw, fingerprint=hashlib.sha256(canonical).hexdigest())


async def keyed_order(uow: UnitOfWork, user_id: uuid.UUID, keyed: IdempotencyKey) -> Order | None:
    """The order the user already placed with this key (None when there is none).

    InvalidArgument when that order came from another request: a key names one request only.
    """
    row = await repo.keyed_order_row(uow.session, user_id, keyed.key)
    if row is None:
        return None
    if row.idempotency_fingerprint != keyed.fingerprint:
        raise InvalidArgument(
            "Idempotency-Key was already used with another request",
            errors=[{"field": FIELD, "message": "already used with another request"}],
        )
    return repo.order_from_row(row, await repo.events_of(uow.session, row.id))


async def order_placed_before(uow: UnitOfWork, user_id: uuid.UUID, keyed: IdempotencyKey | None) -> Order:
    """The order that took this key first (its insert won the unique index against ours)."""
    order = await keyed_order(uow, user_id, keyed) if keyed is not None else None
    if order is None:  # pragma: no cover - taken and then erased between two statements
        raise Conflict("an order with this Idempotency-Key was being changed; try again")
    return order
