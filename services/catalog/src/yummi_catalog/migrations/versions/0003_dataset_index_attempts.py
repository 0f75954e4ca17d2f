"""Datasets count their indexing attempts, so a file that stops the process every time is failed, not retried
without end.

Revision ID: 0003_dataset_index_attempts
Revises: 0002_product_partitions
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_dataset_index_attempts"
down_revision = "0002_product_partitions"
branch_labels = None
depends_on = None

SCHEMA = "catalog"


def upgrade() -> None:
    op.add_column(
        "datasets",
        sa.Column("index_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("datasets", "index_attempts", schema=SCHEMA)
