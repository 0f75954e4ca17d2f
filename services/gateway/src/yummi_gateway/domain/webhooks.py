"""Svix webhook signatures (Clerk): HMAC-SHA256 over `id.timestamp.body`, with a replay window."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

TOLERANCE_SECONDS = 300


class InvalidWebhook(Exception):
    """The webhook is unsigned, badly signed or too old."""


def webhook_secret_bytes(secret: str) -> bytes:
    """The signing key of a `whsec_<base64>` secret."""
    value = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError("CLERK_WEBHOOK_SECRET is not a valid whsec_ secret") from exc


def verify_svix(
    *, key: bytes, msg_id: str | None, timestamp: str | None, signatures: str | None, body: bytes, now: float
) -> None:
    """Accept the webhook only when one `v1,` signature matches and the timestamp is recent."""
    if not msg_id or not timestamp or not signatures:
        raise InvalidWebhook("missing svix headers")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise InvalidWebhook("timestamp outside the tolerance")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise InvalidWebhook("no matching signature")
