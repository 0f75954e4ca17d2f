"""Queries on products: loading a version (its own partition, COPY), dropping one, and the reads.

Each dataset version's products are one partition of `products`, named `products_<dataset id hex>`: a load
creates that table, COPYs into it, then attaches it, which builds its indexes in bulk (far faster than
maintaining them row by row) — all inside the caller's transaction, so a failed load leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, Text, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from yummi_catalog.adapters.tables import PRODUCT_COPY_COLUMNS, SCHEMA, AnyRow, products
from yummi_catalog.domain.catalog_file import CURRENCY, CatalogItem, product_uuid

# What a Product message needs; attributes come back as JSON text, so they are never decoded and re-encoded.
PRODUCT_COLUMNS = (
    products.c.id,
    products.c.retailer,
    products.c.product_id,
    products.c.catalog_ref_id,
    products.c.title,
    products.c.url,
    products.c.image_url,
    products.c.price_minor,
    products.c.currency,
    products.c.category,
    products.c.available,
    cast(products.c.payload, Text).label("attributes_json"),
)


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


def _title_contains(q: str) -> Any:
    return func.lower(products.c.title).like(f"%{_escape_like(q)}%", escape="\\")


def _title_resembles(q: str) -> Any:
    """A word of the title is similar to `q` (pg_trgm word similarity, served by the trigram index)."""
    return func.lower(products.c.title).op("%>")(q)


def _filtered(query: Select[Any], dataset_id: uuid.UUID, where: ProductFilter) -> Select[Any]:
    query = query.where(products.c.dataset_id == dataset_id)
    if where.retailer:
        query = query.where(products.c.retailer == where.retailer)
    if where.category:
        query = query.where(func.lower(products.c.category) == where.category)
    if where.available is not None:
        query = query.where(products.c.available.is_(where.available))
    return query


def _matching(query: Select[Any], dataset_id: uuid.UUID, where: ProductFilter) -> Select[Any]:
    query = _filtered(query, dataset_id, where)
    if where.q:
        query = query.where(or_(_title_contains(where.q), _title_resembles(where.q)))
    return query


async def list_page(
    session: AsyncSession,
    *,
    dataset_id: uuid.UUID,
    where: ProductFilter,
    limit: int,
    after_position: int | None,
) -> list[AnyRow]:
    """Up to `limit` products in file order after `after_position`; each row also carries `position`."""
    query = _filtered(select(*PRODUCT_COLUMNS, products.c.position), dataset_id, where)
    if after_position is not None:
        query = query.where(products.c.position > after_position)
    query = query.order_by(products.c.position).limit(limit)
    return list((await session.execute(query)).all())


async def search_page(
    session: AsyncSession,
    *,
    dataset_id: uuid.UUID,
    where: ProductFilter,
    limit: int,
    after: tuple[float, int] | None,
    fuzzy: bool,
) -> list[AnyRow]:
    """Up to `limit` title matches for `where.q`, best first, with `rank` and `position` on each row.

    Two tiers that never overlap: titles containing `q` (rank 3 when they start with it, else 2), then,
    with `fuzzy`, titles that only resemble it (rank = word similarity, at most 1) — "bananna" finds bananas.
    Computing similarity only for the second tier keeps common words ("milk") cheap.
    """
    title = func.lower(products.c.title)
    contains = _title_contains(where.q)
    if fuzzy:
        rank: Any = cast(func.word_similarity(where.q, title), Float(precision=53))
        condition = and_(_title_resembles(where.q), ~contains)
    else:
        starts = title.like(f"{_escape_like(where.q)}%", escape="\\")
        rank = case(
            (starts, literal(3.0, Float(precision=53))), else_=literal(SUBSTRING_RANK, Float(precision=53))
        )
        condition = contains
    query = _filtered(select(*PRODUCT_COLUMNS, products.c.position, rank.label("rank")), dataset_id, where)
    query = query.where(condition)
    if after is not None:
        last_rank, last_position = after
        query = query.where(
            or_(rank < last_rank, and_(rank == last_rank, products.c.position > last_position))
        )
    query = query.order_by(rank.desc(), products.c.position).limit(limit)
    return list((await session.execute(query)).all())


async def random_sample(
    session: AsyncSession, *, dataset_id: uuid.UUID, where: ProductFilter, limit: int, start: float
) -> list[AnyRow]:
    """Up to `limit` distinct products read from a random point of the `rand` index, wrapping around once."""
    base = _matching(select(*PRODUCT_COLUMNS), dataset_id, where)
    first = base.where(products.c.rand >= start).order_by(products.c.rand).limit(limit)
    rows = list((await session.execute(first)).all())
    if len(rows) < limit:
        wrap = base.where(products.c.rand < start).order_by(products.c.rand).limit(limit - len(rows))
        rows.extend((await session.execute(wrap)).all())
    return rows


async def get_by_id(
    session: AsyncSession, *, dataset_id: uuid.UUID, product_uuid: uuid.UUID
) -> AnyRow | None:
    query = select(*PRODUCT_COLUMNS).where(products.c.dataset_id == dataset_id, products.c.id == product_uuid)
    return (await session.execute(query)).first()


async def get_by_product_id(
    session: AsyncSession, *, dataset_id: uuid.UUID, product_id: str, retailer: str = ""
) -> AnyRow | None:
    """The product with this retailer id (the first retailer alphabetically when several share it)."""
    query = select(*PRODUCT_COLUMNS).where(
        products.c.dataset_id == dataset_id, products.c.product_id == product_id
    )
    if retailer:
        query = query.where(products.c.retailer == retailer)
    return (await session.execute(query.order_by(products.c.retailer).limit(1))).first()


async def get_many(
    session: AsyncSession,
    *,
    dataset_id: uuid.UUID,
    product_uuids: Sequence[uuid.UUID],
    product_ids: Sequence[str],
    retailer: str = "",
) -> list[AnyRow]:
    """Products matching any of the UUIDs or retailer product ids (UUID matches first)."""
    # Two index lookups rather than one OR: each stays an index probe whatever the planner's statistics say.
    rows: list[AnyRow] = []
    for column, values in ((products.c.id, product_uuids), (products.c.product_id, product_ids)):
        if not values:
            continue
        query = select(*PRODUCT_COLUMNS).where(products.c.dataset_id == dataset_id, column.in_(values))
        if retailer:
            query = query.where(products.c.retailer == retailer)
        rows.extend((await session.execute(query.order_by(products.c.retailer, products.c.position))).all())
    return rows
