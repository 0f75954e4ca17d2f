"""CPU per rate-limit call: the gateway's redis-py client against its pipelined connection, in one run.

    .venv/bin/python bench/redis_client.py [--url redis://127.0.0.1:6379/0] [--calls 20000] [--concurrency 64]

Both run the gateway's GCRA script (EVALSHA, two buckets per call) from `--concurrency` tasks at once on
uvloop, as the gateway's requests do, and report the process's CPU time per call and calls per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable

import uvloop

from yummi_gateway.adapters.rate_limiter import GCRA_SCRIPT, GCRA_SHA
from yummi_gateway.adapters.redis_client import SOCKET_TIMEOUT_SECONDS, connect_redis
from yummi_gateway.adapters.redis_pipeline import connect_pipeline

WINDOW_MICROS = 60_000_000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(
    call: Callable[[int], Awaitable[object]], calls: int, concurrency: int
) -> tuple[float, float]:
    numbers = iter(range(calls))

    async def worker() -> None:
        for n in numbers:
            await call(n)

    started, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (cpu_seconds() - cpu) / calls * 1e6, calls / (time.perf_counter() - started)


def buckets(n: int) -> tuple[list[str], list[int]]:
    subject = f"bench{n % 50}"
    return [f"bench:rl:{{{subject}}}:a", f"bench:rl:{{{subject}}}:b"], [WINDOW_MICROS, 10**8, 10**8]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    redis = connect_redis(args.url)
    script = redis.register_script(GCRA_SCRIPT)
    pipeline = connect_pipeline(args.url, timeout=SOCKET_TIMEOUT_SECONDS)
    if pipeline is None:
        raise SystemExit("the pipelined client needs a redis:// or rediss:// URL")

    async def with_redis_py(n: int) -> object:
        keys, values = buckets(n)
        return await script(keys=keys, args=values)

    async def with_pipeline(n: int) -> object:
        keys, values = buckets(n)
        return await pipeline.evalsha(GCRA_SHA, GCRA_SCRIPT, keys, values)

    print(f"{args.calls} calls, {args.concurrency} in flight, {args.url}")
    for name, call in (
        ("redis-py (BlockingConnectionPool)", with_redis_py),
        ("pipelined connection", with_pipeline),
    ):
        await drive(call, min(args.calls, 2_000), args.concurrency)  # warm-up: connections, script cache
        micros, rate = await drive(call, args.calls, args.concurrency)
        print(f"{name:36} {micros:7.1f} µs CPU per call {rate:9.0f} calls/s")
    await pipeline.aclose()
    await redis.aclose()


if __name__ == "__main__":
    uvloop.run(main())
