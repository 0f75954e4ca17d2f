"""Alembic per service: each schema has its own history and version table; `upgrade` creates the database."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from alembic.operations import Operations
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from yummi_common.logging import get_logger
from yummi_common.settings import SCHEMAS, Settings

log = get_logger(__name__)


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when it does not exist yet (connecting to `postgres` to do it)."""
    parsed = make_url(url)
    name = parsed.database or "postgres"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("created database", database=name)
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


def upgrade(*, settings: Settings, service: str, script_location: Path, revision: str = "head") -> None:
    """Upgrade one service's schema to `revision` (idempotent; safe when several processes start at once)."""
    url = settings.database_url_for(service)
    asyncio.run(ensure_database(url))
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = SCHEMAS[service]
    command.upgrade(cfg, revision)


def run_env(*, target_metadata: MetaData | None = None) -> None:
    """The body of every service's alembic env.py: online, async, schema-scoped, under an advisory lock."""
    cfg = context.config
    url: str = cfg.attributes["url"]
    schema: str = cfg.attributes["schema"]

    def do_run(connection: Connection) -> None:
        # One migrator per schema at a time: services may start together in dev.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(schema.encode())})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(do_run)
        finally:
            await engine.dispose()

    asyncio.run(run_async())


def create_messaging_tables(op: Operations | Any, schema: str) -> None:
    """Create the outbox, inbox and dead_letters tables (same shape as `messaging.tables`)."""
    from sqlalchemy.dialects.postgresql import JSONB, UUID

    op.create_table(
        "outbox",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        schema=schema,
    )
    op.create_index(
        f"ix_{schema}_outbox_unpublished",
        "outbox",
        ["created_at"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("event_id", sa.Text),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
