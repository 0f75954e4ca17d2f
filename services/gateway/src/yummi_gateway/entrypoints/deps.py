"""Route dependencies: the gateway container, the authenticated user and its roles, the JSON body rule."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError

from yummi_common.logging import get_logger
from yummi_gateway.adapters.clerk import KeysUnavailable
from yummi_gateway.bootstrap import Gateway
from yummi_gateway.caller import current_caller, verify_caller
from yummi_gateway.domain.identity import Identity, InvalidToken, MissingToken, User, roles_for
from yummi_gateway.middleware import note_user
from yummi_gateway.service_layer.users import ensure_user

log = get_logger(__name__)
REALM = 'Bearer realm="yummi"'


# Dependencies are `async def` even when they do no I/O: FastAPI runs plain `def` ones in its thread pool.
async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def unauthorized(description: str | None) -> HTTPException:
    """401 with the RFC 6750 challenge; a request without credentials gets no error code."""
    if description is None:
        return HTTPException(
            401, "Sign in: send Authorization: Bearer <token>.", headers={"WWW-Authenticate": REALM}
        )
    challenge = f'{REALM}, error="invalid_token", error_description="{description}"'
    return HTTPException(
        401, f"The token is not accepted: {description}.", headers={"WWW-Authenticate": challenge}
    )


async def authenticate(request: Request, gateway: Gateway) -> Identity:
    """The verified caller: a Clerk RS256 token, or an unsigned dev token when dev auth is allowed."""
    caller = current_caller()
    try:
        # The edge middleware verified this request's token already: reuse its finding.
        if caller is not None and caller.identity is not None:
            return caller.identity
        if caller is not None and caller.failure is not None:
            raise caller.failure
        return await verify_caller(gateway, request.headers.get("authorization"))
    except MissingToken:
        raise unauthorized(None) from None
    except InvalidToken as exc:
        raise unauthorized(exc.description) from None
    except KeysUnavailable:
        raise HTTPException(
            503, "Sign-in keys cannot be fetched right now; try again shortly.", headers={"Retry-After": "5"}
        ) from None


async def current_user(request: Request, gateway: GatewayDep) -> User:
    """The caller's identity user (created on first sight) with the roles of this request."""
    identity = await authenticate(request, gateway)
    try:
        record = await ensure_user(
            uow_factory=gateway.uow,
            cache=gateway.users,
            clerk_user_id=identity.clerk_user_id,
            email=identity.email,
        )
    except (SQLAlchemyError, OSError) as exc:
        log.error("identity store unavailable", error_type=type(exc).__name__)
        raise HTTPException(
            503, "The identity store is unavailable; try again shortly.", headers={"Retry-After": "1"}
        ) from None
    note_user(str(record.id))
    email = identity.email or record.email
    roles = roles_for(
        email=email,
        role_claims=identity.role_claims,
        admin_emails=gateway.settings.admin_email_set,
        runner_emails=gateway.settings.runner_email_set,
    )
    return User(
        id=record.id,
        clerk_user_id=record.clerk_user_id,
        email=email,
        created_at=record.created_at,
        roles=roles,
    )


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(403, "This needs the admin role.")
    return user


async def runner_user(user: CurrentUser) -> User:
    if not (user.is_runner or user.is_admin):
        raise HTTPException(403, "This needs the runner role.")
    return user


AdminUser = Annotated[User, Depends(admin_user)]
RunnerUser = Annotated[User, Depends(runner_user)]


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def is_json_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def require_json(request: Request) -> None:
    """A body, when sent, must be application/json (415 otherwise)."""
    if _has_body(request) and not is_json_media_type(request.headers.get("content-type")):
        raise HTTPException(415, "Send the request body as application/json.")


JSON_BODY = [Depends(require_json)]


def idempotency_key(request: Request) -> str:
    """The request's Idempotency-Key ("" when none), passed on to the service that keeps it with what it made.

    The idempotency middleware has already refused a malformed one; the service checks it again.
    """
    return request.headers.get("idempotency-key", "")


def parse_uuid(value: str, *, what: str) -> uuid.UUID:
    """A path id that must be a UUID; anything else names nothing we hold (404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise HTTPException(404, f"{what} not found") from None
