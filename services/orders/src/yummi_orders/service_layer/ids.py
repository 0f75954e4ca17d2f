"""Turning caller-supplied ids into UUIDs with the right domain error."""

from __future__ import annotations

import uuid

from yummi_common.errors import InvalidArgument, NotFound


def parse_user_id(value: str, *, field: str = "user_id") -> uuid.UUID:
    """The caller's user id; InvalidArgument when it is not a UUID."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidArgument(
            f"{field} must be a UUID", errors=[{"field": field, "message": "must be a UUID"}]
        ) from None


def parse_order_id(value: str) -> uuid.UUID:
    """An order id from a path or request; no order has a malformed id, so that is NotFound."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("order not found") from None
