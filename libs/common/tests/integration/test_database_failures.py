"""A database that refuses, turns away or drops connections answers UNAVAILABLE (retried, nothing applied)
or, once a commit was sent, DEADLINE_EXCEEDED (not retried: its outcome is unknown) — never INTERNAL.

Real failures only: a closed port, a role over its connection limit (SQLSTATE 53300, too many connections),
and a backend terminated by pg_terminate_backend in the middle of a call. The gRPC client is the gateway's
own channel (`make_channel`: transparent retries of UNAVAILABLE), so the attempt counts show what it retries.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy import Column, Integer, Table, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_common.db import (
    DatabaseUnavailable,
    UnitOfWork,
    connection_lost,
    create_engine,
    create_session_factory,
    read_connection,
)
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import bound_port, start_grpc_server
from yummi_common.migrations import ensure_database
from yummi_common.service import service_tables
from yummi_common.settings import Settings

pytestmark = pytest.mark.integration

SCHEMA = "dbfailtest"
SERVICE = "DbProbe"


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(database_url: str | None = None) -> Settings:
    values = {"DATABASE_URL": database_url} if database_url else {}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _with_user(url: str, user: str) -> str:
    return make_url(url).set(username=user, password=None).render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def _serve(
    handlers: dict[str, Callable[[], Awaitable[None]]],
) -> AsyncIterator[tuple[Callable[[str], Awaitable[grpc.StatusCode]], Counter[str]]]:
    """A gRPC server (the services' interceptor) with one bytes-in/bytes-out method per handler; yields a
    `call(name) -> status` over the gateway's channel and the count of attempts that reached each method."""
    attempts: Counter[str] = Counter()

    def method(name: str) -> grpc.RpcMethodHandler:
        async def run(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            attempts[name] += 1
            await handlers[name]()
            return b""

        return grpc.unary_unary_rpc_method_handler(run)

    generic = grpc.method_handlers_generic_handler(SERVICE, {name: method(name) for name in handlers})

    def register(server: grpc.aio.Server) -> list[str]:
        server.add_generic_rpc_handlers((generic,))
        return []

    server, _health = await start_grpc_server(addr="127.0.0.1:0", register=register)
    channel = make_channel(f"127.0.0.1:{bound_port(server)}", deadline=20.0)

    async def call(name: str) -> grpc.StatusCode:
        stub = channel.unary_unary(f"/{SERVICE}/{name}")
        try:
            await stub(b"")
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    try:
        yield call, attempts
    finally:
        await channel.close()
        await server.stop(grace=None)


@pytest.fixture
async def counters(yummi_infra: Any) -> AsyncIterator[tuple[AsyncEngine, Table]]:
    settings = _settings()
    await ensure_database(settings.database_url)
    metadata, _messaging = service_tables(SCHEMA)
    counter = Table("counter", metadata, Column("n", Integer, nullable=False), schema=SCHEMA)
    engine = create_engine(settings, "gateway")
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
        await conn.execute(counter.delete())
    try:
        yield engine, counter
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))
        await engine.dispose()


def _uow(engine: AsyncEngine, counter: Table) -> UnitOfWork:
    _metadata, messaging = service_tables(SCHEMA)
    return UnitOfWork(create_session_factory(engine), outbox=messaging.outbox, source="yummi.test")


async def test_a_refused_connection_is_unavailable_and_retried() -> None:
    engine = create_engine(_settings(f"postgresql://postgres@127.0.0.1:{_free_port()}/none"), "gateway")
    metadata, messaging = service_tables(SCHEMA)

    async def read_through_uow() -> None:
        async with UnitOfWork(create_session_factory(engine), outbox=messaging.outbox, source="t") as uow:
            await uow.session.execute(text("SELECT 1"))

    async def read_direct() -> None:
        async with read_connection(engine) as conn:
            await conn.fetchval("SELECT 1")

    with pytest.raises(DatabaseUnavailable) as caught:
        await read_through_uow()
    assert isinstance(caught.value.__cause__, OSError)
    try:
        async with _serve({"Uow": read_through_uow, "Direct": read_direct}) as (call, attempts):
            assert await call("Uow") == grpc.StatusCode.UNAVAILABLE
            assert await call("Direct") == grpc.StatusCode.UNAVAILABLE
            # The channel's retry policy (3 attempts) ran each again: safe, nothing could have been applied.
            assert attempts == Counter({"Uow": 3, "Direct": 3})
    finally:
        await engine.dispose()


async def test_too_many_connections_is_unavailable(yummi_infra: Any) -> None:
    """A role whose connection limit is reached: Postgres' real "too many connections" (53300)."""
    settings = _settings()
    role = f"yummi_limited_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url.replace("+asyncpg", "", 1))
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
    engine = create_engine(_settings(_with_user(settings.database_url, role)), "gateway")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            async with read_connection(engine) as conn:
                await conn.fetchval("SELECT 1")
        assert isinstance(caught.value.__cause__, asyncpg.exceptions.TooManyConnectionsError)

        async def read() -> None:
            async with read_connection(engine) as conn:
                await conn.fetchval("SELECT 1")

        async with _serve({"Read": read}) as (call, attempts):
            assert await call("Read") == grpc.StatusCode.UNAVAILABLE
            assert attempts["Read"] == 3
    finally:
        await engine.dispose()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def _terminate_own_backend(conn: Any) -> None:
    """Have another connection end this session's backend (as a Postgres restart or failover would)."""
    pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    killer = await asyncpg.connect(_settings().database_url.replace("+asyncpg", "", 1))
    try:
        await killer.execute("SELECT pg_terminate_backend($1, 10000)", pid)  # waits until it is gone
    finally:
        await killer.close()


async def test_a_connection_lost_before_commit_is_unavailable_and_nothing_applied(
    counters: tuple[AsyncEngine, Table],
) -> None:
    engine, counter = counters

    async def write() -> None:
        async with _uow(engine, counter) as uow:
            await uow.session.execute(counter.insert().values(n=1))
            await _terminate_own_backend(uow.session)
            await uow.session.execute(select(counter.c.n))  # the connection is gone here
            await uow.commit()

    async with _serve({"Write": write}) as (call, attempts):
        assert await call("Write") == grpc.StatusCode.UNAVAILABLE
        assert attempts["Write"] == 3
    async with engine.connect() as conn:
        assert (await conn.execute(select(counter.c.n))).all() == []


async def test_a_connection_lost_at_commit_is_not_retried(counters: tuple[AsyncEngine, Table]) -> None:
    """Once COMMIT was sent the outcome is unknown: DEADLINE_EXCEEDED (503 at the gateway), no retry."""
    engine, counter = counters

    async def write() -> None:
        async with _uow(engine, counter) as uow:
            await uow.session.execute(counter.insert().values(n=1))
            await _terminate_own_backend(uow.session)
            await uow.commit()

    async with _serve({"Write": write}) as (call, attempts):
        assert await call("Write") == grpc.StatusCode.DEADLINE_EXCEEDED
        assert attempts["Write"] == 1


async def test_the_pool_recovers_from_a_database_restart_without_pinging(
    counters: tuple[AsyncEngine, Table],
) -> None:
    """Every pooled connection is ended: the first call may fail (UNAVAILABLE, retried); later ones work."""
    engine, _counter = counters
    pids = set()
    async with engine.connect() as first, engine.connect() as second:
        for conn in (first, second):
            pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    killer = await asyncpg.connect(_settings().database_url.replace("+asyncpg", "", 1))
    try:
        await killer.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM unnest($1::int[]) AS pid", list(pids)
        )
    finally:
        await killer.close()

    async def read() -> None:
        async with read_connection(engine) as conn:
            assert await conn.fetchval("SELECT 1") == 1

    async with _serve({"Read": read}) as (call, attempts):
        for _ in range(3):
            assert await call("Read") == grpc.StatusCode.OK
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


def test_statement_errors_are_not_connection_failures() -> None:
    error = asyncpg.exceptions.UndefinedTableError("relation does not exist")
    assert not connection_lost(error)
    assert not connection_lost(ValueError("bad input"))
    assert connection_lost(asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"))
