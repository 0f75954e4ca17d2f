"""The identity schema: users (plus the outbox/inbox every service keeps)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID

from yummi_common.service import service_tables

SCHEMA = "identity"
metadata, messaging = service_tables(SCHEMA)

users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("clerk_user_id", Text, nullable=False, unique=True),
    Column("email", Text),
    Column("pseudonym", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("erased_at", DateTime(timezone=True)),
    schema=SCHEMA,
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("svix_id", Text, primary_key=True),
    Column("event_type", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)
