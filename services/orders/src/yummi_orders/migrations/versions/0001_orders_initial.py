"""Orders, their history, baskets, and the messaging tables of the orders schema.

Revision ID: 0001_orders_initial
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from yummi_common.migrations import create_messaging_tables

revision = "0001_orders_initial"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "orders"
STATUSES = "('pending_payment', 'queued', 'claimed', 'completed', 'failed', 'rejected', 'cancelled')"


def upgrade() -> None:
    create_messaging_tables(op, SCHEMA)  # type: ignore[arg-type]  # `op` proxies Operations
    op.create_table(
        "orders",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("retailer", sa.Text, nullable=False),
        sa.Column("items", JSONB, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False, server_default=sa.text("'ZAR'")),
        sa.Column("notes", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("runner_id", sa.Text),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("retailer_reference", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_orders_status"),
        sa.CheckConstraint("total_minor >= 0", name="ck_orders_total_minor"),
        sa.CheckConstraint("attempts >= 0", name="ck_orders_attempts"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_orders_user_created", "orders", ["user_id", sa.text("created_at DESC"), "id"], schema=SCHEMA
    )
    op.create_index("ix_orders_status_created", "orders", ["status", "created_at"], schema=SCHEMA)
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "order_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.orders.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_order_events_order", "order_events", ["order_id", "created_at", "id"], schema=SCHEMA)
    op.create_table(
        "baskets",
        sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_table(
        "basket_items",
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.baskets.user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("retailer", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("added_unit_price_minor", sa.BigInteger, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("user_id", "product_id", name="pk_basket_items"),
        sa.CheckConstraint("quantity BETWEEN 1 AND 99", name="ck_basket_items_quantity"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("basket_items", schema=SCHEMA)
    op.drop_table("baskets", schema=SCHEMA)
    op.drop_table("order_events", schema=SCHEMA)
    op.drop_table("orders", schema=SCHEMA)
    for table in ("dead_letters", "inbox", "outbox"):
        op.drop_table(table, schema=SCHEMA)
