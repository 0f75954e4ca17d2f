"""One service process: engine, unit of work, NATS, outbox relay, consumers, gRPC server and CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from yummi_common import metrics, migrations, telemetry
from yummi_common.db import UnitOfWork, create_engine, create_session_factory
from yummi_common.heap import settle_heap
from yummi_common.logging import configure_logging, get_logger
from yummi_common.messaging.consumer import ConsumerRuntime, Subscription
from yummi_common.messaging.events import subject_for
from yummi_common.messaging.nats import connect_nats, ensure_stream
from yummi_common.messaging.relay import OutboxRelay
from yummi_common.messaging.tables import MessagingTables, messaging_tables
from yummi_common.settings import SCHEMAS, Settings, get_settings

log = get_logger(__name__)


@dataclass
class Runtime:
    """What a running service holds; built by `Runtime.start`, closed by `close`."""

    service: str
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    tables: MessagingTables
    nc: NATS | None = None
    js: JetStreamContext | None = None
    relay: OutboxRelay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    # Called after a unit of work that emitted events commits (the relay is woken first).
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        *,
        service: str,
        settings: Settings,
        metadata: MetaData,
        tables: MessagingTables,
        with_messaging: bool = True,
    ) -> Runtime:
        """Connect to Postgres and NATS and start the outbox relay (and the gauges of its backlog)."""
        engine = create_engine(settings, service)
        telemetry.instrument_engine(engine)
        metrics.watch_engine(service, engine)
        runtime = cls(
            service=service,
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            tables=tables,
        )
        if with_messaging and settings.nats_url:
            runtime.nc = await connect_nats(settings, name=service)
            runtime.js = runtime.nc.jetstream()
            await ensure_stream(runtime.js, settings)
            runtime.relay = OutboxRelay(
                engine=engine, tables=tables, js=runtime.js, settings=settings, service=service
            )
            runtime.tasks.append(
                asyncio.create_task(runtime.relay.run(runtime.stop_event), name="outbox-relay")
            )
            refresh = metrics.refresh_periodically(
                runtime.relay.refresh_gauges,
                interval=settings.metrics_refresh_seconds,
                stop=runtime.stop_event,
                name="outbox",
            )
            runtime.tasks.append(asyncio.create_task(refresh, name="outbox-gauges"))
        elif with_messaging:
            log.warning("NATS_URL not set: events stay in the outbox until a relay runs")
        return runtime

    def watch(self, event_type: str, on_event: Callable[[bytes], None], *, name: str) -> None:
        """Call `on_event` with the body of every `event_type` event this process hears, until it stops.

        A plain NATS subscription, not a durable consumer: every replica gets its own copy of each message,
        which is what caches need to drop what an event made stale. One sent while this process was
        disconnected is missed, so a cache using this must also expire on its own. No-op without NATS.
        """
        if self.nc is None:
            return
        nc = self.nc
        subject = subject_for(self.settings.nats_subject_prefix, event_type)

        async def delivered(message: Any) -> None:
            on_event(message.data)

        async def watching() -> None:
            subscription = await nc.subscribe(subject, cb=delivered)
            try:
                await self.stop_event.wait()
            finally:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

        self.tasks.append(asyncio.create_task(watching(), name=name))

    def start_consumers(self, subscriptions: list[Subscription]) -> None:
        """Run the event handlers of this service (no-op without NATS)."""
        if not subscriptions or self.js is None:
            return
        consumers = ConsumerRuntime(
            service=self.service,
            engine=self.engine,
            uow_factory=self.uow,
            tables=self.tables,
            js=self.js,
            settings=self.settings,
            subscriptions=subscriptions,
        )
        self.tasks.append(asyncio.create_task(consumers.run(self.stop_event), name="consumers"))

    def uow(self) -> UnitOfWork:
        """A new unit of work on this service's database, whose events this process's relay publishes as soon
        as they are committed."""
        return UnitOfWork(
            self.session_factory,
            outbox=self.tables.outbox,
            source=f"yummi.{self.service}",
            on_commit=self._committed if self.relay or self.after_commit else None,
        )

    def _committed(self, rows: list[dict[str, Any]]) -> None:
        if self.relay is not None:
            self.relay.publish_now(rows)
        for callback in self.after_commit:
            callback()

    async def close(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.nc is not None:
            # Tasks are stopped and every publish was acked: close (drain waits on idle pull subscriptions).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), timeout=5)
        await self.engine.dispose()


def service_tables(schema: str) -> tuple[MetaData, MessagingTables]:
    """The MetaData of a service's schema with its messaging tables already in it."""
    metadata = MetaData(schema=schema)
    return metadata, messaging_tables(metadata, schema)


@dataclass
class ServiceSpec:
    """How to run one gRPC service: its tables, subscriptions and servicers."""

    name: str
    metadata: MetaData
    tables: MessagingTables
    migrations_dir: Path
    register: Callable[[grpc.aio.Server, Runtime], list[str]]
    subscriptions: Callable[[Runtime], list[Subscription]] = lambda _rt: []
    background: Callable[[Runtime], list[Awaitable[None]]] = lambda _rt: []
    commands: dict[str, Callable[[Settings, list[str]], int]] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return SCHEMAS[self.name]


async def serve(spec: ServiceSpec, settings: Settings) -> None:
    """Run the service until SIGTERM/SIGINT, then stop gracefully."""
    from yummi_common.grpc_server import start_grpc_server

    runtime = await Runtime.start(
        service=spec.name,
        settings=settings,
        metadata=spec.metadata,
        tables=spec.tables,
    )
    runtime.start_consumers(spec.subscriptions(runtime))
    for job in spec.background(runtime):
        runtime.tasks.append(asyncio.ensure_future(job))
    server, health = await start_grpc_server(
        addr=settings.grpc_addr_for(spec.name), register=lambda s: spec.register(s, runtime)
    )
    metrics_server = metrics.start_metrics_server(settings.metrics_port_for(spec.name))
    settle_heap()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping", service=spec.name)
    await health.enter_graceful_shutdown()
    await server.stop(grace=5)
    await runtime.close()
    if metrics_server is not None:
        metrics_server.close()


def _event_loop() -> asyncio.Runner:
    """uvloop's event loop when installed (less CPU per call for gRPC, asyncpg and NATS), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency; only an odd platform lacks it
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(spec: ServiceSpec, argv: list[str] | None = None) -> int:
    """The console script: `serve` (default), `migrate`, plus the service's own commands."""
    parser = argparse.ArgumentParser(prog=f"yummi-{spec.name}")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", *spec.commands])
    args, rest = parser.parse_known_args(argv)
    settings = get_settings()
    configure_logging(service=spec.name, json=settings.log_json, level=settings.log_level)
    if args.command == "serve":
        telemetry.init_telemetry(spec.name, settings)
        metrics.set_build_info(spec.name, settings.version)
    if args.command == "migrate":
        migrations.upgrade(settings=settings, service=spec.name, script_location=spec.migrations_dir)
        log.info("migrated", service=spec.name, schema=spec.schema)
        return 0
    if args.command == "serve":
        if settings.should_migrate_on_start:
            migrations.upgrade(settings=settings, service=spec.name, script_location=spec.migrations_dir)
        with contextlib.suppress(KeyboardInterrupt), _event_loop() as runner:
            runner.run(serve(spec, settings))
        return 0
    return spec.commands[args.command](settings, rest)
