"""The client's Idempotency-Key on the order: one order per (user, key), whatever the gateway still remembers.

Revision ID: 0002_orders_idempotency_key
Revises: 0001_orders_initial
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_orders_idempotency_key"
down_revision = "0001_orders_initial"
branch_labels = None
depends_on = None

SCHEMA = "orders"


def upgrade() -> None:
    # Nullable columns without defaults: adding them rewrites nothing, existing orders keep no key.
    op.add_column("orders", sa.Column("idempotency_key", sa.Text), schema=SCHEMA)
    op.add_column("orders", sa.Column("idempotency_fingerprint", sa.Text), schema=SCHEMA)
    op.create_check_constraint(
        "ck_orders_idempotency",
        "orders",
        "(idempotency_key IS NULL) = (idempotency_fingerprint IS NULL)",
        schema=SCHEMA,
    )
    op.create_index(
        "ux_orders_user_idempotency_key",
        "orders",
        ["user_id", "idempotency_key"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_orders_user_idempotency_key", table_name="orders", schema=SCHEMA)
    op.drop_constraint("ck_orders_idempotency", "orders", schema=SCHEMA)
    op.drop_column("orders", "idempotency_fingerprint", schema=SCHEMA)
    op.drop_column("orders", "idempotency_key", schema=SCHEMA)
