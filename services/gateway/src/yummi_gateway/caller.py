"""Who is calling: the client IP behind our proxies and the verified identity, worked out once per request."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import Scope

from yummi_gateway.adapters.clerk import KeysUnavailable
from yummi_gateway.domain.client_ip import IPNetwork, resolve_client_ip
from yummi_gateway.domain.identity import (
    Identity,
    InvalidToken,
    MissingToken,
    bearer_token,
    identity_from_claims,
    parse_dev_token,
    token_header,
)

if TYPE_CHECKING:
    from yummi_gateway.bootstrap import Gateway

AuthFailure = MissingToken | InvalidToken | KeysUnavailable


@dataclass
class Caller:
    """The edge's findings about this request, read again by the route dependencies."""

    client_ip: str
    identity: Identity | None = None
    failure: AuthFailure | None = None


_caller: ContextVar[Caller | None] = ContextVar("yummi_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the request being handled (None outside the edge middleware, e.g. in unit tests)."""
    return _caller.get()


def set_caller(caller: Caller | None) -> object:
    return _caller.set(caller)


def reset_caller(token: object) -> None:
    _caller.reset(token)  # type: ignore[arg-type]


def scope_header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (`name` in lower case), decoded as latin-1."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def client_ip_of(scope: Scope, trusted: tuple[IPNetwork, ...]) -> str:
    """The socket peer, or the right-most X-Forwarded-For hop not ours when the peer is a trusted proxy."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not trusted:
        return peer
    forwarded = [
        value.decode("latin-1")
        for key, value in scope.get("headers", ())
        if key.lower() == b"x-forwarded-for"
    ]
    return resolve_client_ip(peer, forwarded, trusted)


async def verify_caller(gateway: Gateway, authorization: str | None) -> Identity:
    """A Clerk RS256 token, or an unsigned dev token when dev auth is allowed; raises an AuthFailure."""
    token = bearer_token(authorization)
    header = token_header(token)
    alg = header.get("alg")
    if isinstance(alg, str) and alg.lower() == "none":
        if not gateway.settings.dev_auth_allowed:
            raise InvalidToken("unsigned tokens are not accepted")
        claims = parse_dev_token(token, now=time.time())
    elif gateway.verifier is None:
        raise InvalidToken("signed tokens cannot be verified: no issuer is configured")
    else:
        claims = await gateway.verifier.verify(token, header)
    return identity_from_claims(claims)


async def identify(gateway: Gateway, authorization: str | None) -> tuple[Identity | None, AuthFailure | None]:
    """The identity, or why there is none (kept for the route, which answers 401/503 in its own words)."""
    try:
        return await verify_caller(gateway, authorization), None
    except (MissingToken, InvalidToken, KeysUnavailable) as exc:
        return None, exc
