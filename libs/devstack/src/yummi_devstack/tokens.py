"""Unsigned development JWTs, accepted by the gateway only when AUTH_DISABLE_VERIFICATION=true in dev/test."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

DEV_SUB = "user_dev"
DEV_EMAIL = "dev@yummi.local"
DEV_TOKEN_LIFETIME_SECONDS = 24 * 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def dev_token(sub: str = DEV_SUB, email: str | None = DEV_EMAIL, **claims: Any) -> str:
    """An `alg: none` JWT with `sub`, `email`, `iat`, `exp` and the extra claims (None leaves a claim out)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "email": email,
        "iat": now,
        "exp": now + DEV_TOKEN_LIFETIME_SECONDS,
    }
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    header = {"alg": "none", "typ": "JWT"}
    encoded = [_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)]
    return ".".join(encoded) + "."


def dev_auth_headers(sub: str = DEV_SUB, email: str | None = DEV_EMAIL, **claims: Any) -> dict[str, str]:
    """`Authorization: Bearer <dev token>` for an HTTP client."""
    return {"Authorization": f"Bearer {dev_token(sub, email, **claims)}"}
