"""Daily token budgets with reservations, and an index for re-wrapping data keys by key-encryption key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ai"


def upgrade() -> None:
    op.create_table(
        "ai_budget",
        sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("used_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("used_tokens >= 0 AND reserved_tokens >= 0", name="ck_ai_budget_non_negative"),
        schema=SCHEMA,
    )
    op.create_table(
        "ai_budget_reservations",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("tokens >= 0", name="ck_ai_budget_reservations_tokens"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_ai_budget_reservations_user_day",
        "ai_budget_reservations",
        ["user_id", "day", "expires_at"],
        schema=SCHEMA,
    )
    op.create_index("ix_api_credentials_kek", "api_credentials", ["kek_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_api_credentials_kek", "api_credentials", schema=SCHEMA)
    op.drop_table("ai_budget_reservations", schema=SCHEMA)
    op.drop_table("ai_budget", schema=SCHEMA)
