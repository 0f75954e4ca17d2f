"""Catalog schema: datasets, their files and products (with trigram search), plus outbox/inbox.

Revision ID: 0001_catalog_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from yummi_common.migrations import create_messaging_tables

revision = "0001_catalog_initial"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "catalog"


def _ensure_pg_trgm() -> str:
    """Create pg_trgm (in `public`) unless it exists anywhere; return the schema that holds it."""
    bind = op.get_bind()
    found = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )
    ).scalar()
    if found is None:
        # A concurrent creator (another database user migrating at the same moment) is not an error.
        op.execute(
            "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public; "
            "EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL; END $$"
        )
        found = bind.execute(
            sa.text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_trgm'"
            )
        ).scalar()
    return str(found or "public")


def upgrade() -> None:
    trgm_schema = _ensure_pg_trgm()
    op.create_table(
        "datasets",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("item_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("checksum_sha256", sa.Text),
        sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("progress_done", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("progress_total", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("version", name="uq_datasets_version"),
        sa.CheckConstraint(
            "status IN ('uploading', 'indexing', 'ready', 'failed', 'active', 'retired')",
            name="ck_datasets_status",
        ),
        schema=SCHEMA,
    )
    # At most one live version: activation demotes the old one and promotes the new one in one transaction.
    op.create_index(
        "uq_datasets_one_active",
        "datasets",
        ["status"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_datasets_checksum", "datasets", ["checksum_sha256"], schema=SCHEMA)
    op.create_index("ix_datasets_created", "datasets", ["created_at", "id"], schema=SCHEMA)
    op.execute(f"CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.dataset_version_seq")

    op.create_table(
        "dataset_files",
        sa.Column(
            "dataset_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("checksum_sha256", sa.Text),
        sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("uploaded_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )

    op.create_table(
        "products",
        sa.Column(
            "dataset_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        # Stable across versions (a name-based UUID of retailer and product_id), so unique per version only.
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("retailer", sa.Text, nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("catalog_ref_id", sa.Text, nullable=False, server_default=""),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False, server_default=""),
        sa.Column("image_url", sa.Text, nullable=False, server_default=""),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False, server_default="ZAR"),
        sa.Column("category", sa.Text, nullable=False, server_default=""),
        sa.Column("available", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("rand", sa.Float(precision=53), nullable=False, server_default=sa.text("random()")),
        sa.PrimaryKeyConstraint("dataset_id", "id", name="pk_products"),
        sa.CheckConstraint("price_minor >= 0", name="ck_products_price"),
        sa.UniqueConstraint(
            "dataset_id", "retailer", "product_id", name="uq_products_dataset_retailer_product"
        ),
        sa.UniqueConstraint("dataset_id", "position", name="uq_products_dataset_position"),
        schema=SCHEMA,
    )
    op.create_index("ix_products_dataset_product_id", "products", ["dataset_id", "product_id"], schema=SCHEMA)
    op.execute(
        f"CREATE INDEX ix_products_dataset_category ON {SCHEMA}.products "
        "(dataset_id, lower(category), position)"
    )
    # random=true: start at a random point of this index and read forward (no ORDER BY random() scan).
    op.create_index("ix_products_dataset_rand", "products", ["dataset_id", "rand"], schema=SCHEMA)
    # q: word-similarity and substring search on titles ("banan" finds bananas).
    op.execute(
        f"CREATE INDEX ix_products_title_trgm ON {SCHEMA}.products "
        f'USING gin (lower(title) "{trgm_schema}".gin_trgm_ops)'
    )

    create_messaging_tables(op, SCHEMA)


def downgrade() -> None:
    op.drop_table("products", schema=SCHEMA)
    op.drop_table("dataset_files", schema=SCHEMA)
    op.drop_table("datasets", schema=SCHEMA)
    op.execute(f"DROP SEQUENCE IF EXISTS {SCHEMA}.dataset_version_seq")
    for table in ("dead_letters", "inbox", "outbox"):
        op.drop_table(table, schema=SCHEMA)
