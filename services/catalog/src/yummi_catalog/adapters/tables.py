"""The catalog schema's tables (the first migration creates the same shape)."""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Row,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from yummi_common.service import service_tables
from yummi_common.settings import SCHEMAS

SCHEMA = SCHEMAS["catalog"]
# A row of any of these tables (or a selection of their columns).
AnyRow: TypeAlias = Row[*tuple[Any, ...]]
metadata, messaging = service_tables(SCHEMA)

DATASET_STATUSES = ("uploading", "indexing", "ready", "failed", "active", "retired")

datasets = Table(
    "datasets",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("version", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("source", Text, nullable=False, server_default=""),
    Column("notes", Text, nullable=False, server_default=""),
    Column("item_count", Integer, nullable=False, server_default=text("0")),
    Column("checksum_sha256", Text),
    Column("size_bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("created_by", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("activated_at", DateTime(timezone=True)),
    Column("error", Text),
    Column("progress_done", BigInteger, nullable=False, server_default=text("0")),
    Column("progress_total", BigInteger, nullable=False, server_default=text("0")),
    Column("index_attempts", Integer, nullable=False, server_default=text("0")),  # started, this completion
    CheckConstraint(
        "status IN ('uploading', 'indexing', 'ready', 'failed', 'active', 'retired')",
        name="ck_datasets_status",
    ),
    Index("uq_datasets_one_active", "status", unique=True, postgresql_where=text("status = 'active'")),
    Index("ix_datasets_checksum", "checksum_sha256"),
    Index("ix_datasets_created", "created_at", "id"),
)

dataset_files = Table(
    "dataset_files",
    metadata,
    Column(
        "dataset_id",
        UUID(as_uuid=True),
        ForeignKey(f"{SCHEMA}.datasets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("object_key", Text, nullable=False),
    Column("checksum_sha256", Text),  # NULL until the file is verified (a direct upload: at completion)
    Column("size_bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("uploaded_at", DateTime(timezone=True)),
    Column("etag", Text),  # the object store's version of the verified file (indexing reads that one)
)

# Partitioned by dataset_id (LIST): each version's products are one partition, `products_<dataset hex>`,
# loaded and indexed on their own, then attached (see adapters.products). Non-unique indexes are per
# partition, so they need no dataset_id column.
products = Table(
    "products",
    metadata,
    Column("dataset_id", UUID(as_uuid=True), primary_key=True),
    # The same product keeps the same id in every version (see domain.catalog_file.product_uuid).
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("retailer", Text, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("catalog_ref_id", Text, nullable=False, server_default=""),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False, server_default=""),
    Column("image_url", Text, nullable=False, server_default=""),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False, server_default="ZAR"),
    Column("category", Text, nullable=False, server_default=""),
    Column("available", Boolean, nullable=False, server_default=text("true")),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("rand", Float(precision=53), nullable=False, server_default=text("random()")),
    CheckConstraint("price_minor >= 0", name="ck_products_price"),
    UniqueConstraint("dataset_id", "position", name="uq_products_dataset_position"),
    UniqueConstraint("dataset_id", "product_id", "retailer", name="uq_products_dataset_product"),
    Index("ix_products_category", func.lower(text("category")), "position"),
    Index("ix_products_rand", "rand"),
    Index(
        "ix_products_title_trgm",
        func.lower(text("title")),
        postgresql_using="gin",
        postgresql_ops={"lower_1": "gin_trgm_ops"},
    ),
    postgresql_partition_by="LIST (dataset_id)",
)

# The columns a bulk load writes, in COPY order (rand takes its server default).
PRODUCT_COPY_COLUMNS = (
    "dataset_id",
    "id",
    "position",
    "retailer",
    "product_id",
    "catalog_ref_id",
    "title",
    "url",
    "image_url",
    "price_minor",
    "currency",
    "category",
    "available",
    "payload",
)
