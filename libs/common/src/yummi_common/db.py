"""One async engine and session factory per service, and the unit of work that owns a transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from yummi_common.context import current_request_id
from yummi_common.settings import Settings
from yummi_common.telemetry import inject


def create_engine(settings: Settings, service: str) -> AsyncEngine:
    """The service's engine: its own database URL, a bounded pool, UTC sessions."""
    return create_async_engine(
        settings.database_url_for(service),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": f"yummi-{service}"}},
    )


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
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._source = source
        self._on_commit = on_commit
        self._pending_events: list[dict[str, Any]] = []
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self._pending_events = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    def emit(self, event_type: str, body: Message, *, event_id: uuid.UUID | None = None) -> uuid.UUID:
        """Queue an event for the outbox; it is written in this transaction and published after commit."""
        from yummi_common.messaging.events import check_event_body

        check_event_body(event_type, body)
        eid = event_id or uuid.uuid4()
        headers = {"x-request-id": current_request_id(), "ce-source": self._source}
        # The producing span's context: the relay and the consumers continue this trace.
        inject(headers)
        self._pending_events.append(
            {
                "id": eid,
                "event_type": event_type,
                "payload": body.SerializeToString(),
                "headers": headers,
            }
        )
        return eid

    async def flush_events(self) -> None:
        if self._pending_events:
            await self.session.execute(insert(self._outbox), self._pending_events)
            self._pending_events = []

    async def commit(self) -> None:
        had_events = bool(self._pending_events)
        await self.flush_events()
        await self.session.commit()
        if had_events and self._on_commit is not None:
            self._on_commit()

    async def rollback(self) -> None:
        self._pending_events = []
        await self.session.rollback()


UnitOfWorkFactory = Callable[[], UnitOfWork]
