"""The orders schema as SQLAlchemy Core tables (the first migration creates the same shape)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from yummi_common.service import service_tables
from yummi_common.settings import SCHEMAS

SCHEMA = SCHEMAS["orders"]
STATUS_CHECK = (
    "status IN ('pending_payment', 'queued', 'claimed', 'completed', 'failed', 'rejected', 'cancelled')"
)
IDEMPOTENCY_CHECK = "(idempotency_key IS NULL) = (idempotency_fingerprint IS NULL)"

metadata, messaging = service_tables(SCHEMA)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("retailer", Text, nullable=False),
    Column("items", JSONB, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False, server_default=text("'ZAR'")),
    Column("notes", Text, nullable=False, server_default=text("''")),
    Column("runner_id", Text),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("retailer_reference", Text),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The client's Idempotency-Key and the fingerprint of the request it came with (both or neither).
    Column("idempotency_key", Text),
    Column("idempotency_fingerprint", Text),
    CheckConstraint(STATUS_CHECK, name="ck_orders_status"),
    CheckConstraint("total_minor >= 0", name="ck_orders_total_minor"),
    CheckConstraint("attempts >= 0", name="ck_orders_attempts"),
    CheckConstraint(IDEMPOTENCY_CHECK, name="ck_orders_idempotency"),
    schema=SCHEMA,
)
Index("ix_orders_user_created", orders.c.user_id, orders.c.created_at.desc(), orders.c.id)
Index("ix_orders_status_created", orders.c.status, orders.c.created_at)
Index(
    "ux_orders_user_idempotency_key",
    orders.c.user_id,
    orders.c.idempotency_key,
    unique=True,
    postgresql_where=orders.c.idempotency_key.isnot(None),
)

order_events = Table(
    "order_events",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "order_id", UUID(as_uuid=True), ForeignKey(f"{SCHEMA}.orders.id", ondelete="CASCADE"), nullable=False
    ),
    Column("type", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)
Index("ix_order_events_order", order_events.c.order_id, order_events.c.created_at, order_events.c.id)

baskets = Table(
    "baskets",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)

basket_items = Table(
    "basket_items",
    metadata,
    Column(
        "user_id",
        UUID(as_uuid=True),
        ForeignKey(f"{SCHEMA}.baskets.user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("product_id", Text, nullable=False),
    Column("retailer", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=text("''")),
    Column("quantity", Integer, nullable=False),
    Column("added_unit_price_minor", BigInteger, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("user_id", "product_id", name="pk_basket_items"),
    CheckConstraint("quantity BETWEEN 1 AND 99", name="ck_basket_items_quantity"),
    schema=SCHEMA,
)
