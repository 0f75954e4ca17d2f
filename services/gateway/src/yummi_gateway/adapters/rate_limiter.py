"""Rate limits shared by every gateway replica: GCRA over all of a request's buckets in one Lua script."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from redis.asyncio import Redis

from yummi_gateway.adapters.redis_client import REDIS_ERRORS, RedisGuard
from yummi_gateway.adapters.redis_pipeline import RedisPipeline
from yummi_gateway.domain.rate_limits import WINDOW_SECONDS, Bucket, BucketState, Decision, decide

MICROS = 1_000_000

# GCRA (the generic cell rate algorithm): each bucket stores its "theoretical arrival time" (TAT). A request
# is allowed when TAT + interval - burst <= now, with interval = window / limit and burst = limit * interval,
# so `limit` requests may arrive at once and then one per interval. All buckets must allow, or none is
# charged. Time comes from the Redis server, so replicas with skewed clocks still agree.
# KEYS[i]: bucket i. ARGV[1]: the window in microseconds; ARGV[i + 1]: bucket i's limit.
# Returns four integers per bucket: allowed (1/0), remaining, retry-after µs, reset µs.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local out, tats, all_allowed = {}, {}, true
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 1])
  local interval = math.floor(window / limit)
  local burst = interval * limit
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst
  if allow_at > now then
    all_allowed = false
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = allow_at - now
    out[#out + 1] = tat - now
  else
    out[#out + 1] = 1
    out[#out + 1] = math.floor((burst - (new_tat - now)) / interval)
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  end
  tats[i] = new_tat
end
if all_allowed then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
  end
end
return out
"""

GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()  # noqa: S324 - the script's name in Redis


class RedisRateLimiter:
    """Spends a request's buckets with one EVALSHA; raises RedisUnavailable when Redis cannot answer.

    Over `pipeline` (one pipelined connection, see redis_pipeline) when given, else over redis-py.
    """

    def __init__(
        self, redis: Redis, *, key_prefix: str, guard: RedisGuard, pipeline: RedisPipeline | None = None
    ) -> None:
        self._script = redis.register_script(GCRA_SCRIPT)
        self._pipeline = pipeline
        self._prefix = key_prefix
        self._guard = guard

    def key(self, bucket: Bucket) -> str:
        # The {subject} hash tag puts a caller's buckets in one cluster slot, as a multi-key script needs.
        return f"{self._prefix}rl:{{{bucket.subject}}}:{bucket.name}"

    async def spend(self, buckets: Sequence[Bucket]) -> Decision:
        """Charge every bucket one request when all have room; the decision for the response headers."""
        self._guard.check()
        keys = [self.key(b) for b in buckets]
        args = [WINDOW_SECONDS * MICROS, *(b.limit for b in buckets)]
        try:
            if self._pipeline is not None:
                raw = await self._pipeline.evalsha(GCRA_SHA, GCRA_SCRIPT, keys, args)
            else:
                raw = await self._script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise self._guard.failed(exc, during="rate limit") from exc
        self._guard.succeeded()
        states = [
            BucketState(
                limit=bucket.limit,
                allowed=bool(raw[4 * i]),
                remaining=max(int(raw[4 * i + 1]), 0),
                retry_after=_seconds(raw[4 * i + 2]),
                reset=_seconds(raw[4 * i + 3]),
            )
            for i, bucket in enumerate(buckets)
        ]
        return decide(states)


def _seconds(micros: int) -> int:
    return max(math.ceil(int(micros) / MICROS), 0)
