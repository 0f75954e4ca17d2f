"""Queries on products: loading a version (its own partition, COPY), dropping one, and the reads.

Each dataset version's products are one partition of `products`, named `products_<dataset id hex>`: a load
creates that table, COPYs into it, then attaches it, which builds its indexes in bulk (far faster than
maintaining them row by row) — all inside the caller's transaction, so a failed load leaves nothing behind.

The reads run straight on an asyncpg connection (`yummi_common.db.read_connection`), outside any
transaction: a version's products never change once it is loaded, and every read names its dataset id, so
the statements of one page always see one version. SQL is written here, once per filter shape; asyncpg
prepares each text once per connection and reuses it. Rows are asyncpg records (`row["title"]`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from yummi_catalog.adapters.tables import PRODUCT_COPY_COLUMNS, SCHEMA
from yummi_catalog.domain.catalog_file import CURRENCY, CatalogItem, product_uuid

Record = asyncpg.Record

# What a Product message needs; attributes come back as JSON text, so they are never decoded and re-encoded.
PRODUCT_COLUMNS = (
    "id, retailer, product_id, catalog_ref_id, title, url, image_url, price_minor, currency, category, "
    "available, payload::text AS attributes_json"
)
PRODUCTS = f"{SCHEMA}.products"


# Titles containing the query rank 2 or 3; titles that only resemble it rank below 1 (word similarity).
SUBSTRING_RANK = 2.0


@dataclass(frozen=True)
class ProductFilter:
    """Optional narrowing of a listing; strings are already normalised (lower-case)."""

    retailer: str = ""
    category: str = ""
    available: bool | None = None
    q: str = ""


# Memory for building one partition's indexes (the trigram index builds about twice as fast as with 64MB).
INDEX_BUILD_MEMORY = "256MB"


def partition_name(dataset_id: uuid.UUID) -> str:
    """The table holding one version's products."""
    return f"products_{dataset_id.hex}"


async def create_partition(session: AsyncSession, *, dataset_id: uuid.UUID) -> None:
    """A new table shaped like `products` for one version, not yet attached (so not yet readable)."""
    await session.execute(
        text(
            f"CREATE TABLE {SCHEMA}.{partition_name(dataset_id)} "
            f"(LIKE {SCHEMA}.products INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
    )


async def copy_products(session: AsyncSession, *, dataset_id: uuid.UUID, items: Iterable[CatalogItem]) -> int:
    """Bulk-load items into the version's new partition with COPY, in the session's transaction; the count."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not driver.is_in_transaction():
        # COPY outside the session's transaction would commit on its own: refuse rather than half-import.
        raise RuntimeError("copy_products needs a session with an open transaction")
    records = [
        (
            dataset_id,
            product_uuid(item.retailer, item.product_id),
            item.index,
            item.retailer,
            item.product_id,
            item.catalog_ref_id,
            item.title,
            item.url,
            item.image_url,
            item.price_minor,
            CURRENCY,
            item.category,
            item.available,
            item.attributes_json,
        )
        for item in items
    ]
    await driver.copy_records_to_table(
        partition_name(dataset_id), schema_name=SCHEMA, columns=list(PRODUCT_COPY_COLUMNS), records=records
    )
    return len(records)


async def attach_partition(session: AsyncSession, *, dataset_id: uuid.UUID) -> None:
    """Make the loaded partition part of `products` (building its indexes) and refresh its statistics."""
    name = partition_name(dataset_id)
    await session.execute(text(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
    await session.execute(
        text(f"ALTER TABLE {SCHEMA}.products ATTACH PARTITION {SCHEMA}.{name} FOR VALUES IN ('{dataset_id}')")
    )
    # Statistics now, so the first searches already use the trigram index.
    await session.execute(text(f"ANALYZE {SCHEMA}.{name}"))


async def drop_partition(connection: AsyncConnection, *, dataset_id: uuid.UUID) -> None:
    """Detach (concurrently: reads of other versions never wait) and drop a version's partition.

    `connection` must be in autocommit mode; a detach interrupted earlier is finished first.
    """
    name = f"{SCHEMA}.{partition_name(dataset_id)}"
    state = (
        await connection.execute(
            text("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(:name)"),
            {"name": name},
        )
    ).first()
    if state is not None:
        mode = "FINALIZE" if state.inhdetachpending else "CONCURRENTLY"
        await connection.execute(text(f"ALTER TABLE {SCHEMA}.products DETACH PARTITION {name} {mode}"))
    await connection.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _escape_like(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Query:
    """SQL text and its positional arguments, built clause by clause."""

    def __init__(self, dataset_id: uuid.UUID) -> None:
        self.args: list[Any] = [dataset_id]
        self.where = ["dataset_id = $1"]

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def filtered(self, where: ProductFilter) -> _Query:
        if where.retailer:
            self.where.append(f"retailer = {self.arg(where.retailer)}")
        if where.category:
            self.where.append(f"lower(category) = {self.arg(where.category)}")
        if where.available is not None:
            self.where.append(f"available = {self.arg(where.available)}")
        return self

    def conditions(self) -> str:
        return " AND ".join(self.where)


# Titles containing q (the LIKE pattern) or, through the trigram index, resembling it (word similarity).
_CONTAINS = "lower(title) LIKE {pattern} ESCAPE '\\'"
_RESEMBLES = "lower(title) %> {q}"


async def list_page(
    conn: asyncpg.Connection,
    *,
    dataset_id: uuid.UUID,
    where: ProductFilter,
    limit: int,
    after_position: int | None,
) -> list[Record]:
    """Up to `limit` products in file order after `after_position`; each row also carries `position`."""
    query = _Query(dataset_id).filtered(where)
    if after_position is not None:
        query.where.append(f"position > {query.arg(after_position)}")
    sql = (
        f"SELECT {PRODUCT_COLUMNS}, position FROM {PRODUCTS} WHERE {query.conditions()} "  # noqa: S608 - placeholders and constants only
        f"ORDER BY position LIMIT {query.arg(limit)}"
    )
    return list(await conn.fetch(sql, *query.args))


async def search_page(
    conn: asyncpg.Connection,
    *,
    dataset_id: uuid.UUID,
    where: ProductFilter,
    limit: int,
    after: tuple[float, int] | None,
    fuzzy: bool,
) -> list[Record]:
    """Up to `limit` title matches for `where.q`, best first, with `rank` and `position` on each row.

    Two tiers that never overlap: titles containing `q` (rank 3 when they start with it, else 2), then,
    with `fuzzy`, titles that only resemble it (rank = word similarity, at most 1) — "bananna" finds bananas.
    Computing similarity only for the second tier keeps common words ("milk") cheap.
    """
    query = _Query(dataset_id).filtered(where)
    escaped = _escape_like(where.q)
    contains = _CONTAINS.format(pattern=query.arg(f"%{escaped}%"))
    if fuzzy:
        q = query.arg(where.q)
        rank = f"word_similarity({q}, lower(title))::float8"
        query.where += [_RESEMBLES.format(q=q), f"NOT ({contains})"]
    else:
        starts = _CONTAINS.format(pattern=query.arg(f"{escaped}%"))
        rank = f"(CASE WHEN {starts} THEN 3.0::float8 ELSE {SUBSTRING_RANK}::float8 END)"
        query.where.append(contains)
    if after is not None:
        last_rank, last_position = query.arg(after[0]), query.arg(after[1])
        query.where.append(f"({rank} < {last_rank} OR ({rank} = {last_rank} AND position > {last_position}))")
    sql = (
        f"SELECT {PRODUCT_COLUMNS}, position, {rank} AS rank FROM {PRODUCTS} WHERE {query.conditions()} "  # noqa: S608 - placeholders and constants only
        f"ORDER BY rank DESC, position LIMIT {query.arg(limit)}"
    )
    return list(await conn.fetch(sql, *query.args))


async def random_sample(
    conn: asyncpg.Connection, *, dataset_id: uuid.UUID, where: ProductFilter, limit: int, start: float
) -> list[Record]:
    """Up to `limit` distinct products read from a random point of the `rand` index, wrapping around once."""
    rows: list[Record] = []
    for side in (">=", "<"):
        query = _Query(dataset_id).filtered(where)
        if where.q:
            pattern = query.arg(f"%{_escape_like(where.q)}%")
            q = query.arg(where.q)
            query.where.append(f"({_CONTAINS.format(pattern=pattern)} OR {_RESEMBLES.format(q=q)})")
        query.where.append(f"rand {side} {query.arg(start)}")
        sql = (
            f"SELECT {PRODUCT_COLUMNS} FROM {PRODUCTS} WHERE {query.conditions()} "  # noqa: S608 - placeholders and constants only
            f"ORDER BY rand LIMIT {query.arg(limit - len(rows))}"
        )
        rows.extend(await conn.fetch(sql, *query.args))
        if len(rows) >= limit:
            break
    return rows


_BY_ID = f"SELECT {PRODUCT_COLUMNS} FROM {PRODUCTS} WHERE dataset_id = $1 AND id = $2"  # noqa: S608 - placeholders and constants only
_BY_PRODUCT_ID = (
    f"SELECT {PRODUCT_COLUMNS} FROM {PRODUCTS} WHERE dataset_id = $1 AND product_id = $2 "  # noqa: S608 - placeholders and constants only
    "ORDER BY retailer LIMIT 1"
)


async def get_by_id(
    conn: asyncpg.Connection, *, dataset_id: uuid.UUID, product_uuid: uuid.UUID
) -> Record | None:
    row: Record | None = await conn.fetchrow(_BY_ID, dataset_id, product_uuid)
    return row


async def get_by_product_id(
    conn: asyncpg.Connection, *, dataset_id: uuid.UUID, product_id: str
) -> Record | None:
    """The product with this retailer id (the first retailer alphabetically when several share it)."""
    row: Record | None = await conn.fetchrow(_BY_PRODUCT_ID, dataset_id, product_id)
    return row


async def get_many(
    conn: asyncpg.Connection,
    *,
    dataset_id: uuid.UUID,
    product_uuids: Sequence[uuid.UUID],
    product_ids: Sequence[str],
    retailer: str = "",
) -> list[Record]:
    """Products matching any of the UUIDs or retailer product ids (UUID matches first)."""
    # Two index lookups rather than one OR: each stays an index probe whatever the planner's statistics say.
    rows: list[Record] = []
    for column, values, kind in (("id", product_uuids, "uuid"), ("product_id", product_ids, "text")):
        if not values:
            continue
        query = _Query(dataset_id)
        query.where.append(f"{column} = ANY({query.arg(list(values))}::{kind}[])")
        if retailer:
            query.where.append(f"retailer = {query.arg(retailer)}")
        sql = (
            f"SELECT {PRODUCT_COLUMNS} FROM {PRODUCTS} WHERE {query.conditions()} ORDER BY retailer, position"  # noqa: S608 - placeholders and constants only
        )
        rows.extend(await conn.fetch(sql, *query.args))
    return rows


# The dataset versions reads are answered from (the rest of `datasets` lives in adapters.datasets).
_DATASET = f"SELECT id, version, checksum_sha256, status FROM {SCHEMA}.datasets"  # noqa: S608 - constants


async def live_dataset(conn: asyncpg.Connection) -> Record | None:
    row: Record | None = await conn.fetchrow(f"{_DATASET} WHERE status = 'active'")
    return row


async def dataset_by_version(conn: asyncpg.Connection, version: str) -> Record | None:
    row: Record | None = await conn.fetchrow(f"{_DATASET} WHERE version = $1", version)
    return row


async def dataset_by_id(conn: asyncpg.Connection, dataset_id: uuid.UUID) -> Record | None:
    row: Record | None = await conn.fetchrow(f"{_DATASET} WHERE id = $1", dataset_id)
    return row
