"""Idempotency records in Redis: claim a key atomically (running marker + lease), then keep or free it."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from yummi_gateway.adapters.redis_client import REDIS_ERRORS, RedisGuard
from yummi_gateway.domain.idempotency import (
    RESULT_TTL_SECONDS,
    RUNNING_LEASE_SECONDS,
    Record,
    StoredResponse,
)

# Returns the record already there, or claims the key with the running marker and returns nil.
CLAIM_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# Only the owner of the running marker may settle it: store the final record, or delete to free the key.
SETTLE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""


@dataclass(frozen=True)
class Claim:
    """Ours to run (`existing` is None), or what the key already holds."""

    key: str
    marker: bytes
    existing: Record | None


class RedisIdempotencyStore:
    """Keys are scoped per user; records live 24 h; every call raises RedisUnavailable when Redis is out."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str,
        guard: RedisGuard,
        lease_seconds: int = RUNNING_LEASE_SECONDS,
        ttl_seconds: int = RESULT_TTL_SECONDS,
    ) -> None:
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._settle = redis.register_script(SETTLE_SCRIPT)
        self._prefix = key_prefix
        self._guard = guard
        self._lease_ms = lease_seconds * 1000
        self._ttl_ms = ttl_seconds * 1000

    def key(self, user: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return f"{self._prefix}idem:{{{user}}}:{digest}"

    async def claim(self, *, user: str, idempotency_key: str, fingerprint: str) -> Claim:
        """Claim the key for this request, or learn what holds it (a running request or a kept response)."""
        key = self.key(user, idempotency_key)
        marker = Record(state="running", fingerprint=fingerprint, owner=secrets.token_hex(16)).encode()
        raw = await self._run(self._claim, key, [marker, self._lease_ms], during="idempotency claim")
        return Claim(key=key, marker=marker, existing=Record.decode(raw) if isinstance(raw, bytes) else None)

    async def keep(self, claim: Claim, *, fingerprint: str, response: StoredResponse) -> bool:
        """Replace our running marker by the final response; False when the lease ran out meanwhile."""
        final = Record(state="done", fingerprint=fingerprint, response=response).encode()
        kept = await self._run(
            self._settle, claim.key, [claim.marker, final, self._ttl_ms], during="idempotency keep"
        )
        return bool(kept)

    async def release(self, claim: Claim) -> None:
        """Free the key (the first attempt failed) so a retry runs again."""
        await self._run(self._settle, claim.key, [claim.marker, b"", 0], during="idempotency release")

    async def _run(self, script: object, key: str, args: list[object], *, during: str) -> object:
        self._guard.check()
        try:
            result = await script(keys=[key], args=args)  # type: ignore[operator]
        except REDIS_ERRORS as exc:
            raise self._guard.failed(exc, during=during) from exc
        self._guard.succeeded()
        return result
