"""Who the caller is: claims read from a token, the roles they grant, and the erasure pseudonym."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

ADMIN = "admin"
RUNNER = "runner"
MAX_TOKEN_CHARS = 8192
MAX_SUBJECT_CHARS = 255
MAX_EMAIL_CHARS = 320
LEEWAY_SECONDS = 30


class MissingToken(Exception):
    """No bearer credentials were sent."""


class InvalidToken(Exception):
    """The credentials were sent but are not acceptable; `description` is safe to show (no key material)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class Identity:
    """A verified caller: the Clerk subject, the email the token names (if any) and the role claims."""

    clerk_user_id: str
    email: str | None
    role_claims: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class User:
    """A row of the identity context, plus the roles of the current request."""

    id: uuid.UUID
    clerk_user_id: str
    email: str | None
    created_at: datetime
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def is_runner(self) -> bool:
        return RUNNER in self.roles


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization or not authorization.strip():
        raise MissingToken
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is too long")
    return token


def _b64_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidToken(f"the token {what} is malformed") from exc
    if not isinstance(value, dict):
        raise InvalidToken(f"the token {what} is malformed")
    return value


def token_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWT, unverified (to pick the verification path)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not a JWT")
    return _b64_json(parts[0], "header")


def parse_dev_token(token: str, *, now: float) -> dict[str, Any]:
    """The claims of an unsigned (`alg: none`) development token, after the time checks."""
    header_segment, payload_segment, signature = token.split(".") if token.count(".") == 2 else ("", "", "")
    if not header_segment:
        raise InvalidToken("the token is not a JWT")
    header = _b64_json(header_segment, "header")
    if str(header.get("alg", "")).lower() != "none":
        raise InvalidToken("not an unsigned development token")
    if signature:
        raise InvalidToken("an unsigned token must have an empty signature")
    claims = _b64_json(payload_segment, "payload")
    check_times(claims, now=now, require_exp=False)
    return claims


def check_times(claims: Mapping[str, Any], *, now: float, require_exp: bool) -> None:
    """exp / nbf / iat with the leeway; numbers only."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            if name == "exp" and require_exp:
                raise InvalidToken("the token has no expiry")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(f"the token's {name} claim is not a number")
    exp = claims.get("exp")
    if exp is not None and now > exp + LEEWAY_SECONDS:
        raise InvalidToken("the token has expired")
    nbf = claims.get("nbf")
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise InvalidToken("the token is not valid yet")
    iat = claims.get("iat")
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise InvalidToken("the token was issued in the future")


def identity_from_claims(claims: Mapping[str, Any]) -> Identity:
    """The subject, email and role claims (`metadata.role` or `role`, a string or a list)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_SUBJECT_CHARS:
        raise InvalidToken("the token has no valid subject")
    email = claims.get("email")
    if email is not None and (not isinstance(email, str) or len(email) > MAX_EMAIL_CHARS or "@" not in email):
        email = None
    roles: set[str] = set()
    metadata = claims.get("metadata")
    for source in (metadata.get("role") if isinstance(metadata, Mapping) else None, claims.get("role")):
        roles.update(_role_values(source))
    return Identity(
        clerk_user_id=sub, email=email.strip().lower() if email else None, role_claims=frozenset(roles)
    )


def _role_values(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return [value.strip().lower()]
    if isinstance(value, list):
        return [v.strip().lower() for v in value if isinstance(v, str)]
    return []


def roles_for(
    *,
    email: str | None,
    role_claims: frozenset[str],
    admin_emails: frozenset[str],
    runner_emails: frozenset[str],
) -> frozenset[str]:
    """admin: email in ADMIN_EMAILS or the admin role claim; runner likewise with RUNNER_EMAILS."""
    roles = set()
    normalised = email.lower() if email else None
    if ADMIN in role_claims or (normalised and normalised in admin_emails):
        roles.add(ADMIN)
    if RUNNER in role_claims or (normalised and normalised in runner_emails):
        roles.add(RUNNER)
    return frozenset(roles)


def new_pseudonym() -> str:
    """The stable pseudonymous reference that replaces an erased user in records kept for the law."""
    return "anon_" + secrets.token_hex(16)
