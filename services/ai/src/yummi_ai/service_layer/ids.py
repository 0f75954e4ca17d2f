"""Reading ids from requests: a malformed id is the caller's mistake (InvalidArgument), never a crash."""

from __future__ import annotations

import uuid

from yummi_common.errors import InvalidArgument


def parse_id(value: str, field: str) -> uuid.UUID:
    """`value` as a UUID, or InvalidArgument naming `field`."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidArgument(
            f"{field} is not a valid id", errors=[{"field": field, "message": "not a UUID"}]
        ) from exc
