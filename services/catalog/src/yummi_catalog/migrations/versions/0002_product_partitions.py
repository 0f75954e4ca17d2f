"""Products become a table partitioned by dataset: one partition per version; dataset files record their ETag.

A version's products are loaded into a table of their own, indexed in bulk and attached as a partition, and
dropping an old version is dropping its partition (no mass DELETE). Existing rows move to per-dataset
partitions here.

Revision ID: 0002_product_partitions
Revises: 0001_catalog_initial
Create Date: 2025-02-01
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002_product_partitions"
down_revision = "0001_catalog_initial"
branch_labels = None
depends_on = None

SCHEMA = "catalog"

COLUMNS = """
    dataset_id uuid NOT NULL,
    id uuid NOT NULL,
    position integer NOT NULL,
    retailer text NOT NULL,
    product_id text NOT NULL,
    catalog_ref_id text NOT NULL DEFAULT '',
    title text NOT NULL,
    url text NOT NULL DEFAULT '',
    image_url text NOT NULL DEFAULT '',
    price_minor bigint NOT NULL,
    currency text NOT NULL DEFAULT 'ZAR',
    category text NOT NULL DEFAULT '',
    available boolean NOT NULL DEFAULT true,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    rand double precision NOT NULL DEFAULT random()
"""


def _trgm_schema() -> str:
    found = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_trgm'"
            )
        )
        .scalar()
    )
    return str(found or "public")


def _partition(dataset_id: uuid.UUID) -> str:
    return f"products_{dataset_id.hex}"


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("dataset_files", sa.Column("etag", sa.Text), schema=SCHEMA)

    op.execute(f"ALTER TABLE {SCHEMA}.products RENAME TO products_unpartitioned")
    for index in (
        "ix_products_dataset_product_id",
        "ix_products_dataset_category",
        "ix_products_dataset_rand",
    ):
        op.execute(f"DROP INDEX {SCHEMA}.{index}")
    op.execute(f"DROP INDEX {SCHEMA}.ix_products_title_trgm")
    op.execute(
        f"ALTER TABLE {SCHEMA}.products_unpartitioned DROP CONSTRAINT pk_products, "
        "DROP CONSTRAINT uq_products_dataset_retailer_product, DROP CONSTRAINT uq_products_dataset_position"
    )

    # Unique constraints must hold the partition key; the other indexes are per partition, so per dataset.
    op.execute(
        f"""
        CREATE TABLE {SCHEMA}.products ({COLUMNS},
            CONSTRAINT pk_products PRIMARY KEY (dataset_id, id),
            CONSTRAINT uq_products_dataset_position UNIQUE (dataset_id, position),
            CONSTRAINT uq_products_dataset_product UNIQUE (dataset_id, product_id, retailer),
            CONSTRAINT ck_products_price CHECK (price_minor >= 0)
        ) PARTITION BY LIST (dataset_id)
        """
    )
    op.execute(f"CREATE INDEX ix_products_category ON {SCHEMA}.products (lower(category), position)")
    # random=true: start at a random point of this index and read forward (no ORDER BY random() scan).
    op.execute(f"CREATE INDEX ix_products_rand ON {SCHEMA}.products (rand)")
    # q: word-similarity and substring search on titles ("banan" finds bananas).
    op.execute(
        f"CREATE INDEX ix_products_title_trgm ON {SCHEMA}.products "
        f'USING gin (lower(title) "{_trgm_schema()}".gin_trgm_ops)'
    )

    dataset_ids = bind.execute(
        sa.text(f"SELECT DISTINCT dataset_id FROM {SCHEMA}.products_unpartitioned")  # noqa: S608 - constants
    ).scalars()
    for dataset_id in list(dataset_ids):
        name = _partition(dataset_id)
        op.execute(
            f"CREATE TABLE {SCHEMA}.{name} (LIKE {SCHEMA}.products INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        bind.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.{name} SELECT * FROM {SCHEMA}.products_unpartitioned "  # noqa: S608
                "WHERE dataset_id = :id"
            ),
            {"id": dataset_id},
        )
        op.execute(
            f"ALTER TABLE {SCHEMA}.products ATTACH PARTITION {SCHEMA}.{name} FOR VALUES IN ('{dataset_id}')"
        )
    op.execute(f"DROP TABLE {SCHEMA}.products_unpartitioned")


def downgrade() -> None:
    op.execute(f"CREATE TABLE {SCHEMA}.products_flat ({COLUMNS})")
    op.execute(f"INSERT INTO {SCHEMA}.products_flat SELECT * FROM {SCHEMA}.products")  # noqa: S608
    op.execute(f"DROP TABLE {SCHEMA}.products CASCADE")  # and every partition
    op.execute(f"ALTER TABLE {SCHEMA}.products_flat RENAME TO products")
    op.execute(
        f"ALTER TABLE {SCHEMA}.products ADD CONSTRAINT pk_products PRIMARY KEY (dataset_id, id), "
        "ADD CONSTRAINT uq_products_dataset_retailer_product UNIQUE (dataset_id, retailer, product_id), "
        "ADD CONSTRAINT uq_products_dataset_position UNIQUE (dataset_id, position), "
        "ADD CONSTRAINT ck_products_price CHECK (price_minor >= 0), "
        f"ADD CONSTRAINT products_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES {SCHEMA}.datasets (id) "
        "ON DELETE CASCADE"
    )
    op.execute(f"CREATE INDEX ix_products_dataset_product_id ON {SCHEMA}.products (dataset_id, product_id)")
    op.execute(
        f"CREATE INDEX ix_products_dataset_category ON {SCHEMA}.products "
        "(dataset_id, lower(category), position)"
    )
    op.execute(f"CREATE INDEX ix_products_dataset_rand ON {SCHEMA}.products (dataset_id, rand)")
    op.execute(
        f"CREATE INDEX ix_products_title_trgm ON {SCHEMA}.products "
        f'USING gin (lower(title) "{_trgm_schema()}".gin_trgm_ops)'
    )
    op.drop_column("dataset_files", "etag", schema=SCHEMA)
