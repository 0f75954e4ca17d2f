"""One pipelined Redis connection for the command every request sends (the rate-limit script).

redis-py's asyncio client checks a connection out of its pool, arms a timeout per read and checks it back in
for every command: 150–190 µs of CPU per rate-limit call at 64 calls in flight, against ~36 µs for writing
the commands to one shared connection and matching replies in order (`bench/redis_client.py` measures both in
one run). Every request pays it, so the rate limiter uses this; everything else keeps redis-py.

Commands from all requests share one connection (Redis answers in order; hiredis parses the replies), and
the commands of one event-loop turn go out in one write. A call
that takes longer than `timeout` closes the connection, failing every call in flight, so a stalled server
costs each caller at most the timeout and the next call connects afresh. `redis://` and `rediss://` (TLS) URLs
with a username, password and database are understood; other schemes (unix sockets) return None from
`connect_pipeline` and the caller keeps redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Reply = Any


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = hiredis.Reader()
        self.waiters: deque[asyncio.Future[Reply]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.unsent: list[bytes] = []  # commands of this loop turn, written together at its end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        while True:
            try:
                reply = self.parser.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"unreadable reply from redis: {exc}"))
                return
            if reply is False:
                return
            if not self.waiters:
                self._fail(RedisConnectionError("a reply nobody asked for"))
                return
            waiter = self.waiters.popleft()
            if not waiter.done():  # a caller that timed out has closed the connection anyway
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or RedisConnectionError("connection closed by the server")
        self._fail(RedisConnectionError(f"redis connection lost: {self.lost}"))

    def _fail(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def send(self, command: bytes) -> asyncio.Future[Reply]:
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.transport is None or self.lost is not None:
            waiter.set_exception(RedisConnectionError("redis connection is closed"))
            return waiter
        self.waiters.append(waiter)
        if not self.unsent:
            asyncio.get_running_loop().call_soon(self._flush)
        self.unsent.append(command)
        return waiter

    def _flush(self) -> None:
        # one write (one system call) for every command this loop turn produced
        unsent, self.unsent = self.unsent, []
        if self.transport is not None and self.lost is None:
            self.transport.write(b"".join(unsent))


def pack(*args: bytes | str | int) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        value = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


class RedisPipeline:
    """Commands pipelined on one lazily opened connection; errors are redis-py's exception types."""

    def __init__(
        self,
        *,
        host: str,
        port: int = 6379,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float = 0.5,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self._username, self._password = username, password
        self._tls = tls
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    async def execute(self, *args: bytes | str | int) -> Reply:
        """One command's reply; a Redis error reply raises ResponseError (NoScriptError for NOSCRIPT)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connection()
        waiter = protocol.send(pack(*args))
        try:
            async with asyncio.timeout(self.timeout):
                reply = await waiter
        except TimeoutError as exc:
            protocol._fail(RedisTimeoutError("redis did not answer in time"))
            raise RedisTimeoutError(f"no reply within {self.timeout} s") from exc
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            raise (NoScriptError if message.startswith("NOSCRIPT") else ResponseError)(message)
        return reply

    async def evalsha(self, sha: str, script: str, keys: list[str], args: list[Any]) -> Reply:
        """EVALSHA, and EVAL (which also caches the script) when the server does not know it yet."""
        try:
            return await self.execute(b"EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute(b"EVAL", script, len(keys), *keys, *args)

    async def aclose(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    async def _connection(self) -> _Protocol:
        # one connection attempt at a time; every caller waiting for it shares its outcome
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(_retrieve)
        protocol = await asyncio.shield(self._connecting)
        self._protocol = protocol
        return protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, protocol = await loop.create_connection(
                    _Protocol,
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self.host if self._tls else None,
                )
                setup = []
                if self._password is not None:
                    auth = (self._username, self._password) if self._username else (self._password,)
                    setup.append(protocol.send(pack(b"AUTH", *auth)))
                if self.db:
                    setup.append(protocol.send(pack(b"SELECT", self.db)))
                for reply in await asyncio.gather(*setup):
                    if isinstance(reply, hiredis.ReplyError):
                        protocol._fail(RedisConnectionError(str(reply)))
                        raise RedisConnectionError(f"redis refused the connection setup: {reply}")
        except TimeoutError as exc:
            raise RedisTimeoutError(f"could not connect to redis within {self.timeout} s") from exc
        except OSError as exc:
            raise RedisConnectionError(f"could not connect to redis: {exc}") from exc
        return protocol


def connect_pipeline(url: str, *, timeout: float) -> RedisPipeline | None:
    """A pipeline for a `redis://` or `rediss://` URL (not connected yet); None for other schemes."""
    options = parse_url(url)
    if "path" in options or "host" not in options:
        return None
    tls: ssl.SSLContext | None = None
    if options.get("connection_class") is SSLConnection:
        tls = ssl.create_default_context()
        if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
    return RedisPipeline(
        host=options["host"],
        port=int(options.get("port") or 6379),
        db=int(options.get("db") or 0),
        username=options.get("username"),
        password=options.get("password"),
        tls=tls,
        timeout=timeout,
    )


def _retrieve(task: asyncio.Task[Any]) -> None:
    # the callers waiting for a connection may all have gone: mark its error seen
    if not task.cancelled():
        task.exception()
