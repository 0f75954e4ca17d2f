"""Clerk session JWTs: RS256 checked against a cached JWKS, refetched (rate-limited) on an unknown kid."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from yummi_common.logging import get_logger
from yummi_gateway.domain.identity import LEEWAY_SECONDS, InvalidToken, check_times

log = get_logger(__name__)

ALGORITHMS = ["RS256"]
JWKS_TIMEOUT_SECONDS = 3.0
MIN_REFETCH_INTERVAL_SECONDS = 60.0
JWKS_MAX_AGE_SECONDS = 3600.0
MAX_JWKS_BYTES = 256 * 1024


class KeysUnavailable(Exception):
    """The JWKS could not be fetched and no key is cached for this token."""


class JwksCache:
    """Signing keys by kid; one fetch at a time, an unknown kid triggers at most one refetch per minute."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_refetch_interval: float = MIN_REFETCH_INTERVAL_SECONDS,
        max_age: float = JWKS_MAX_AGE_SECONDS,
    ) -> None:
        self.url = url
        self._client = client or httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False)
        self._owns_client = client is None
        self._clock = clock
        self._min_refetch_interval = min_refetch_interval
        self._max_age = max_age
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def key_for(self, kid: str) -> PyJWK:
        """The key for `kid`, fetching the JWKS when it is unknown (or the cache is old)."""
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is not None and not self._stale():
                return key
            if self._may_fetch():
                await self._refresh()
            key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise KeysUnavailable
        raise InvalidToken("the token was signed with an unknown key")

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age

    def _may_fetch(self) -> bool:
        # With no key at all every request fails, so retry sooner than the unknown-kid pace.
        interval = self._min_refetch_interval if self._keys else min(self._min_refetch_interval, 5.0)
        return self._attempted_at is None or self._clock() - self._attempted_at >= interval

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        try:
            response = await self._client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError("JWKS document too large")
            keys = _parse_jwks(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
            # Keep serving the keys we have; without any, callers answer 503.
            log.warning("jwks fetch failed", url=self.url, error=type(exc).__name__)
            return
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("jwks fetched", url=self.url, keys=len(keys))


def _parse_jwks(document: Any) -> dict[str, PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = PyJWK(entry, algorithm="RS256")
        except jwt.PyJWKError:
            continue
    if not keys:
        raise ValueError("the JWKS holds no usable RS256 keys")
    return keys


class ClerkVerifier:
    """Verifies a Clerk session token: RS256 only, iss, azp, optional aud, exp/nbf/iat with 30 s leeway."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks: JwksCache,
        audience: str | None = None,
        authorized_parties: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.jwks = jwks
        self.audience = audience or None
        self.authorized_parties = frozenset(authorized_parties or ())
        self._clock = clock

    async def verify(self, token: str, header: dict[str, Any]) -> dict[str, Any]:
        """The verified claims, or InvalidToken / KeysUnavailable."""
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("the token's signing algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key")
        key = await self.jwks.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token has the wrong issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token has the wrong audience") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("the token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is invalid") from exc
        check_times(claims, now=self._clock(), require_exp=True)
        azp = claims.get("azp")
        # As Clerk's own SDKs do: a present azp must be one of ours; native clients send none.
        if self.authorized_parties and azp is not None and azp not in self.authorized_parties:
            raise InvalidToken("the token was issued to another party")
        return claims
