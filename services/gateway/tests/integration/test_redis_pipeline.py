"""The rate limiter's pipelined Redis connection against a real Redis, and against servers that misbehave."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from yummi_gateway.adapters.redis_pipeline import RedisPipeline, connect_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

REDIS_URL = os.environ["REDIS_URL"]


def pipeline(url: str = REDIS_URL, timeout: float = 0.5) -> RedisPipeline:
    made = connect_pipeline(url, timeout=timeout)
    assert made is not None
    return made


async def test_concurrent_commands_share_one_connection_and_each_gets_its_own_reply() -> None:
    redis = pipeline()
    key = f"test:pipe:{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(redis.execute("INCR", key) for _ in range(300)))
        assert sorted(replies) == list(range(1, 301))
        assert await redis.execute("GET", key) == b"300"
        clients = await redis.execute("CLIENT", "ID")
        assert await redis.execute("CLIENT", "ID") == clients  # still the one connection
    finally:
        await redis.execute("DEL", key)
        await redis.aclose()


async def test_an_unknown_script_is_sent_whole_once_then_by_its_sha() -> None:
    redis = pipeline()
    script = f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) + #KEYS"
    sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
    try:
        assert await redis.execute("SCRIPT", "EXISTS", sha) == [0]
        assert await redis.evalsha(sha, script, ["a", "b"], [40]) == 42
        assert await redis.execute("SCRIPT", "EXISTS", sha) == [1]
        assert await redis.evalsha(sha, script, ["a"], [1]) == 2
    finally:
        await redis.aclose()


async def test_an_error_reply_raises_and_the_connection_goes_on() -> None:
    redis = pipeline()
    key = f"test:pipe:{uuid.uuid4().hex}"
    try:
        await redis.execute("SET", key, "not a number")
        with pytest.raises(ResponseError):
            await redis.execute("INCR", key)
        assert await redis.execute("GET", key) == b"not a number"
    finally:
        await redis.execute("DEL", key)
        await redis.aclose()


async def test_a_connection_the_server_closes_is_replaced() -> None:
    redis = pipeline()
    admin = Redis.from_url(REDIS_URL)
    try:
        first = await redis.execute("CLIENT", "ID")
        assert await admin.execute_command("CLIENT", "KILL", "ID", first) == 1
        for _ in range(50):  # the close reaches the client on its next loop turns
            try:
                second = await redis.execute("CLIENT", "ID")
            except RedisConnectionError:
                continue
            if second != first:
                break
            await asyncio.sleep(0.01)
        assert second != first
    finally:
        await redis.aclose()
        await admin.aclose()


async def test_the_database_of_the_url_is_selected() -> None:
    base = REDIS_URL.rsplit("/", 1)[0]
    redis = pipeline(f"{base}/5")
    other = Redis.from_url(f"{base}/5")
    key = f"test:pipe:{uuid.uuid4().hex}"
    try:
        await redis.execute("SET", key, "in five")
        assert await other.get(key) == b"in five"
    finally:
        await other.delete(key)
        await other.aclose()
        await redis.aclose()


async def test_a_server_that_never_answers_costs_each_caller_the_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = pipeline(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(redis.execute("PING") for _ in range(5)), return_exceptions=True)
        elapsed = asyncio.get_running_loop().time() - started
        assert all(isinstance(r, RedisTimeoutError | RedisConnectionError) for r in results), results
        assert elapsed < 2.0
        with pytest.raises(RedisTimeoutError):  # a fresh connection, stalled again
            await redis.execute("PING")
        assert len(accepted) == 2
    finally:
        await redis.aclose()
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()


async def test_nothing_listening_is_a_connection_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    redis = pipeline(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(RedisConnectionError):
        await redis.execute("PING")
    await redis.aclose()


async def test_only_tcp_urls_get_a_pipeline() -> None:
    assert connect_pipeline("unix:///run/redis.sock?db=1", timeout=0.5) is None
    tls = connect_pipeline("rediss://app:secret@cache.example.com:6380/2", timeout=0.5)
    assert tls is not None
    assert (tls.host, tls.port, tls.db) == ("cache.example.com", 6380, 2)
