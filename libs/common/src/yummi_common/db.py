"""One async engine and session factory per service, the unit of work that owns a transaction, read-only
connections straight on the driver, and what a database failure means for the caller.

No ping on checkout: a pooled connection the driver already knows is closed (the server restarted or ended
it) is swapped for a new one at checkout at no cost (no round trip); one that dies silently fails its first
statement, which invalidates it (and every connection opened before it) so the next checkout connects
afresh. Connections are also recycled after `DB_POOL_RECYCLE_SECONDS`.

Pool size: five services × (`DB_POOL_SIZE` 10 + `DB_MAX_OVERFLOW` 0) open at most 50 connections, half of
Postgres' default `max_connections` (100): room for a second replica of the busiest services (catalog,
gateway), migrations, the admin CLI and an operator's psql. An async service needs few connections: each RPC
holds one for a few milliseconds, and on a few cores Postgres does not get faster with more backends running
at once. No overflow: overflow connections are closed as soon as they are returned and opened again at the
next burst (a new Postgres backend each time), which cost the catalog ~13% more CPU per read under load than
a fixed pool of the same size. A call waits up to `DB_POOL_TIMEOUT_SECONDS` (the gRPC deadline) for one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import asyncpg
from google.protobuf.message import Message
from sqlalchemy import (
    CTE,
    Executable,
    Exists,
    Row,
    Table,
    bindparam,
    event,
    exists,
    insert,
    literal_column,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from yummi_common.context import current_request_id
from yummi_common.errors import YummiError
from yummi_common.settings import Settings
from yummi_common.telemetry import inject


class DatabaseUnavailable(YummiError):
    """No connection to the database could be had (refused, too many clients, starting up or shutting down,
    timed out, pool exhausted): nothing was sent on a connection, so no statement of this call ran on it."""

    code = "UNAVAILABLE"


def create_engine(settings: Settings, service: str) -> AsyncEngine:
    """The service's engine: its own database URL, a bounded pool, UTC sessions, no per-checkout ping."""
    engine = create_async_engine(
        settings.database_url_for(service),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_pre_ping=False,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {"timezone": "UTC", "application_name": f"yummi-{service}"},
        },
    )
    event.listen(engine.sync_engine, "do_connect", _connect)
    event.listen(engine.sync_engine.pool, "checkout", _drop_closed)
    return engine


def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a connection; failing to reach the server raises `DatabaseUnavailable`."""
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        failure = _connection_failure(exc)
        if failure is not None:
            raise DatabaseUnavailable(f"the database cannot be reached: {failure!r}"[:300]) from failure
        raise


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose socket is already closed is replaced (the pool retries the checkout)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise sa_exc.DisconnectionError("pooled connection was closed")


# Errors that say the connection failed or is gone, rather than that a statement was wrong.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    asyncpg.exceptions.PostgresConnectionError,  # class 08, and "connection was closed mid-operation"
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,  # 57P01
    asyncpg.exceptions.CrashShutdownError,  # 57P02
)


def _connection_failure(exc: BaseException | None) -> BaseException | None:
    """`exc` or what caused it (SQLAlchemy's adapter re-raises asyncpg's errors as its own) when that is one
    of those, else None."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, _CONNECTION_ERRORS):
            return exc
        # asyncpg's "connection is closed" (a statement on a connection already lost) is an InterfaceError.
        if isinstance(exc, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(exc):
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` (from SQLAlchemy or straight from asyncpg) says the database connection failed or
    could not be had, as opposed to a statement error."""
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or _connection_failure(exc.orig) is not None
    driver_error = asyncpg.exceptions.PostgresError | asyncpg.exceptions.InterfaceError
    return isinstance(exc, driver_error) and _connection_failure(exc) is not None


@dataclass
class _CallEffects:
    committed: bool = False  # a commit was sent (its outcome may be unknown)


_EFFECTS: ContextVar[_CallEffects | None] = ContextVar("yummi_db_effects", default=None)


def track_effects() -> Token[_CallEffects | None]:
    """Start recording, for the current call (an RPC), whether it sent a commit; `reset_effects` ends it."""
    return _EFFECTS.set(_CallEffects())


def reset_effects(token: Token[_CallEffects | None]) -> None:
    _EFFECTS.reset(token)


def _note_commit() -> None:
    effects = _EFFECTS.get()
    if effects is not None:
        effects.committed = True


def failure_status(exc: BaseException) -> str | None:
    """The gRPC status a database connection failure answers with, or None for any other error.

    UNAVAILABLE (clients retry it, the gateway's channels transparently) only while the call has sent no
    commit: then whatever it did in the database was rolled back when the connection went (or never
    started), so running it again cannot apply anything twice. Once a commit was sent its outcome may be
    unknown: DEADLINE_EXCEEDED, which gRPC defines as "may have completed" and no channel retries (the
    gateway answers both with 503 and Retry-After).
    """
    if not connection_lost(exc):
        return None
    effects = _EFFECTS.get()
    return "DEADLINE_EXCEEDED" if effects is not None and effects.committed else "UNAVAILABLE"


@contextlib.asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for read-only statements run straight on asyncpg.

    No transaction (each statement reads its own snapshot, so use it for data that does not change under
    the reader, or for single statements), no SQLAlchemy statement building: asyncpg prepares each SQL text
    once per connection and keeps it. Do not write through it. A connection that fails is invalidated.
    """
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None:  # pragma: no cover - the asyncpg dialect always has one
            raise RuntimeError("no driver connection")
        try:
            yield driver
        except BaseException as exc:
            if isinstance(exc, Exception) and connection_lost(exc):
                await connection.invalidate(exc)
            elif (
                driver.is_in_transaction()
            ):  # pragma: no cover - a misuse: never hand it back mid-transaction
                await connection.invalidate()
            raise


@contextlib.asynccontextmanager
async def autocommit_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement is a transaction of its own: no BEGIN, COMMIT or
    ROLLBACK round trips. For single statements (one snapshot each), such as a read that must be consistent
    in itself, or `UnitOfWork.execute_alone`."""
    async with engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class UnitOfWork:
    """A transaction that rolls back unless `commit()` is called; events emitted in it join the same commit.

    Usage: `async with uow_factory() as uow: ...; uow.emit(...); await uow.commit()`.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        outbox: Table,
        source: str,
        on_commit: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._source = source
        self._on_commit = on_commit
        self._pending_events: list[dict[str, Any]] = []
        self._written: list[dict[str, Any]] = []  # outbox rows a statement of its own wrote (event_written)
        self._committed_alone = False  # execute_alone ran: this unit of work is committed
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self._pending_events = []
        self._written = []
        self._committed_alone = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.session.rollback()
        except Exception as failed:
            # The connection went with the call's own failure: report that one, not the rollback's.
            if exc is None or not connection_lost(failed):
                raise
        finally:
            await self.session.close()

    def emit(self, event_type: str, body: Message, *, event_id: uuid.UUID | None = None) -> uuid.UUID:
        """Queue an event for the outbox; it is written in this transaction and published after commit."""
        eid = event_id or uuid.uuid4()
        self._pending_events.append(self._outbox_row(event_type, body, eid))
        return eid

    def outbox_params(
        self, event_type: str, body: Message, *, event_id: uuid.UUID | None = None
    ) -> dict[str, Any]:
        """The bound values of an `outbox_cte` for this event: for a statement that writes its own event.

        The statement decides whether the row is written (see `outbox_cte`); when it was, say so with
        `event_written(params)` so this process publishes it right after the commit. Rows never announced
        are published all the same, later, by a relay's claim.
        """
        row = self._outbox_row(event_type, body, event_id or uuid.uuid4())
        return {
            "outbox_id": row["id"],
            "outbox_event_type": row["event_type"],
            "outbox_payload": row["payload"],
            "outbox_headers": row["headers"],
        }

    def _outbox_row(self, event_type: str, body: Message, event_id: uuid.UUID) -> dict[str, Any]:
        from yummi_common.messaging.events import check_event_body

        check_event_body(event_type, body)
        headers = {"x-request-id": current_request_id(), "ce-source": self._source}
        # The producing span's context: the relay and the consumers continue this trace.
        inject(headers)
        return {
            "id": event_id,
            "event_type": event_type,
            "payload": body.SerializeToString(),
            "headers": headers,
        }

    def event_written(self, params: dict[str, Any]) -> None:
        """The statement bound with these `outbox_params` wrote its outbox row: publish it once committed
        (at once when `execute_alone` already committed it)."""
        row = {
            "id": params["outbox_id"],
            "event_type": params["outbox_event_type"],
            "payload": params["outbox_payload"],
            "headers": params["outbox_headers"],
        }
        if self._committed_alone:
            self._announce([row])
        else:
            self._written.append(row)

    def _announce(self, rows: list[dict[str, Any]]) -> None:
        if rows and self._on_commit is not None:
            self._on_commit(rows)

    async def flush_events(self) -> None:
        if self._pending_events:
            await self.session.execute(insert(self._outbox), self._pending_events)
            self._written.extend(self._pending_events)
            self._pending_events = []

    async def commit(self) -> None:
        """Commit; the events it wrote are then handed to the process's relay to publish at once."""
        await self.flush_events()
        _note_commit()
        await self.session.commit()
        committed, self._written = self._written, []
        self._announce(committed)

    async def rollback(self) -> None:
        self._pending_events = []
        self._written = []
        await self.session.rollback()

    async def execute_alone(self, statement: Executable, params: dict[str, Any]) -> list[Row[Any]]:
        """Run one statement as a transaction of its own and return its rows: its commit, in one round trip.

        For a unit of work whose whole effect is that statement (data-modifying CTEs, an `outbox_cte` for its
        event): no BEGIN and no COMMIT travel, the statement commits when it succeeds or changes nothing when
        it fails. Only before anything else ran in this unit of work (nothing pending, no transaction). An
        event the statement wrote is published once the caller says so (`event_written`).
        """
        if self._pending_events or self.session.in_transaction():
            raise RuntimeError("execute_alone must be the unit of work's only statement")
        bind = self.session.bind
        if not isinstance(bind, AsyncEngine):  # pragma: no cover - the factory is always bound to an engine
            raise RuntimeError("the unit of work's session is not bound to an engine")
        async with autocommit_connection(bind) as alone:
            _note_commit()  # from here the outcome of a lost connection is unknown
            rows = (await alone.execute(statement, params)).all()
        self._committed_alone = True
        return list(rows)


def returned_rows(cte: CTE) -> Exists:
    """EXISTS over a CTE's rows: for a data-modifying CTE, whether it changed anything."""
    return exists(select(literal_column("1")).select_from(cte))


def outbox_cte(outbox: Table, *, when: CTE | None = None, name: str = "emitted") -> CTE:
    """An INSERT of one outbox row as a CTE, bound to `UnitOfWork.outbox_params` (`outbox_*` names).

    With `when`, the row is written only when that CTE returned a row (the change the event announces
    happened). Attach it with `statement.add_cte(...)`: Postgres runs a data-modifying CTE even when nothing
    reads it.
    """
    values = select(
        bindparam("outbox_id", type_=outbox.c.id.type),
        bindparam("outbox_event_type", type_=outbox.c.event_type.type),
        bindparam("outbox_payload", type_=outbox.c.payload.type),
        bindparam("outbox_headers", type_=outbox.c.headers.type),
    )
    if when is not None:
        values = values.where(returned_rows(when))
    return (
        insert(outbox)
        .from_select(["id", "event_type", "payload", "headers"], values)
        .returning(outbox.c.id)
        .cte(name)
    )


UnitOfWorkFactory = Callable[[], UnitOfWork]
