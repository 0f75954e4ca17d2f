"""identity: users, plus the outbox/inbox/dead_letters tables.

Revision ID: 0001_identity_users
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from yummi_common.migrations import create_messaging_tables

revision: str = "0001_identity_users"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "identity"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("clerk_user_id", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("pseudonym", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("clerk_user_id", name="uq_users_clerk_user_id"),
        schema=SCHEMA,
    )
    create_messaging_tables(op, SCHEMA)


def downgrade() -> None:
    for table in ("dead_letters", "inbox", "outbox", "users"):
        op.drop_table(table, schema=SCHEMA)
