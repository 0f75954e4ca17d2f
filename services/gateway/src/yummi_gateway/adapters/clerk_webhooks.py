"""Clerk webhooks are Svix-signed: checked by the svix library (HMAC-SHA256 of id.timestamp.body, ±5 min)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from svix.webhooks import Webhook, WebhookVerificationError

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


class InvalidWebhook(Exception):
    """The webhook is unsigned, badly signed or outside the replay window."""


def clerk_webhook_verifier(secret: str) -> Webhook:
    """The verifier for a `whsec_<base64>` signing secret; ValueError when the secret is malformed."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError("CLERK_WEBHOOK_SECRET is not a whsec_<base64> secret") from exc
    if len(key) < 16:
        raise ValueError("CLERK_WEBHOOK_SECRET is too short to be a Svix signing secret")
    return Webhook(secret)


def verify_clerk_webhook(verifier: Webhook, *, body: bytes, headers: Mapping[str, str]) -> None:
    """Accept the delivery only when one `v1` signature matches and its timestamp is recent."""
    svix_headers = {name: headers.get(name, "") for name in SVIX_HEADERS}
    try:
        verifier.verify(body, svix_headers)
    # The library raises ValueError (bad base64, a signature without a version, a body that is not UTF-8)
    # besides its own error: every one of them means "not a valid delivery".
    except (WebhookVerificationError, ValueError) as exc:
        raise InvalidWebhook(str(exc) or type(exc).__name__) from exc
