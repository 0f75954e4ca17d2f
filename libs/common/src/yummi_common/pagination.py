"""Opaque keyset cursors: base64url of a small JSON list, rejected cleanly when tampered with."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from yummi_common.errors import InvalidArgument


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    """Decode a cursor made by `encode_cursor`; anything else is an InvalidArgument."""
    try:
        if len(cursor) > 512:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidArgument(
            "cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}]
        ) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidArgument("cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}])
    return values
