"""Reading the catalog: listing (filters, search, random samples, keyset pages) and product lookup.

Reads go through a `CatalogReader`: the live version is kept in-process (re-read after an activation
anywhere, see `CatalogReader`), and products are read straight on a pooled asyncpg connection, outside any
transaction. A read picks its version once and names its dataset id in every statement, so a page is
entirely the old version or entirely the new one, whenever the switch happens.
"""

from __future__ import annotations

import contextlib
import random as random_module
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_catalog.adapters import products as repo
from yummi_catalog.adapters.products import ProductFilter, Record
from yummi_catalog.domain.catalog_file import MAX_CATEGORY, MAX_PRODUCT_ID, MAX_RETAILER
from yummi_catalog.domain.datasets import MAX_VERSION, SERVABLE
from yummi_catalog.service_layer.datasets import page_limit
from yummi_common.db import read_connection
from yummi_common.errors import InvalidArgument, NotFound
from yummi_common.pagination import decode_cursor, encode_cursor

MAX_QUERY = 100
MAX_BATCH = 500
CACHED_PAGES = 256  # pages of up to 500 products kept per process (a 100-product page holds ~70 KB)
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ServedDataset:
    """The version a read is answered from."""

    id: uuid.UUID | None
    version: str
    checksum_sha256: str


NO_DATASET = ServedDataset(id=None, version="", checksum_sha256="")


@dataclass(frozen=True, eq=False)
class ProductPage:
    """One page; compared by identity (a cached page is the same object each time it is served)."""

    rows: list[Record]
    next_cursor: str
    dataset: ServedDataset


class CatalogReader:
    """The read side of one catalog process: the live version, cached, and connections for product reads.

    The live version is read from `catalog.datasets` at most once per `refresh_seconds`, and again at once
    after `invalidate()`, which the process calls when an activation commits here, and on every replica when
    `catalog.dataset.activated` arrives over NATS. A read that raced an activation is not cached (the
    generation changed while it ran), so the cache never holds a version older than the last invalidation.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._live: ServedDataset | None = None
        self._read_at = 0.0
        self._generation = 0

    def invalidate(self) -> None:
        """The live version may have changed: the next read asks the database."""
        self._generation += 1
        self._live = None

    def connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return read_connection(self._engine)

    async def live(self, lazy: _Connection | None = None) -> ServedDataset:
        """The live version (NO_DATASET when none is), from the cache while it is fresh; a refresh reads on
        `lazy`'s connection when given (one connection for the whole read), else on one of its own."""
        live = self._live
        if live is not None and self._clock() - self._read_at < self._refresh_seconds:
            return live
        generation, read_at = self._generation, self._clock()
        if lazy is not None:
            row = await repo.live_dataset(await lazy.get())
        else:
            async with self.connection() as conn:
                row = await repo.live_dataset(conn)
        live = _served(row) if row is not None else NO_DATASET
        if generation == self._generation:  # no activation committed while we read: cache it
            self._live, self._read_at = live, read_at
        return live


class _Connection:
    """A connection taken from the pool only when a read needs the database (a cached page needs none)."""

    def __init__(self, reader: CatalogReader, stack: contextlib.AsyncExitStack) -> None:
        self._reader = reader
        self._stack = stack
        self._conn: asyncpg.Connection | None = None

    async def get(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await self._stack.enter_async_context(self._reader.connection())
        return self._conn


@contextlib.asynccontextmanager
async def _lazy_connection(reader: CatalogReader) -> AsyncIterator[_Connection]:
    async with contextlib.AsyncExitStack() as stack:
        yield _Connection(reader, stack)


async def list_products(
    *,
    reader: CatalogReader,
    limit: int = 0,
    retailer: str = "",
    category: str = "",
    available: bool | None = None,
    q: str = "",
    random: bool = False,
    dataset_version: str = "",
    cursor: str = "",
    cache: PageCache | None = None,
) -> ProductPage:
    """A page of the live (or named) version: in file order, best title match first, or a random sample."""
    limit = page_limit(limit)
    where = ProductFilter(
        retailer=_filter_text(retailer, "retailer", MAX_RETAILER),
        category=_filter_text(category, "category", MAX_CATEGORY),
        available=available,
        q=_search_text(q),
    )
    if random and cursor:
        raise InvalidArgument(
            "a random sample has no pages", errors=[{"field": "cursor", "message": "not allowed with random"}]
        )
    after = _decode_list_cursor(cursor, search=bool(where.q)) if cursor else None
    async with _lazy_connection(reader) as lazy:
        dataset = await _dataset_for_listing(
            reader, lazy, dataset_version, cursor_dataset=after[0] if after else None
        )
        if dataset.id is None:
            return ProductPage(rows=[], next_cursor="", dataset=dataset)

        if random:
            start = random_module.random()  # noqa: S311 - a sampling offset, not a secret
            rows = await repo.random_sample(
                await lazy.get(), dataset_id=dataset.id, where=where, limit=limit, start=start
            )
            return ProductPage(rows=rows, next_cursor="", dataset=dataset)

        key = (dataset.id, limit, where, cursor)
        if cache is not None and (cached := cache.get(key)) is not None:
            return cached
        page = await _ordered_page(
            await lazy.get(), dataset, dataset.id, where=where, limit=limit, after=after
        )
    if cache is not None:
        cache.put(key, page)
    return page


async def _ordered_page(
    conn: asyncpg.Connection,
    dataset: ServedDataset,
    dataset_id: uuid.UUID,
    *,
    where: ProductFilter,
    limit: int,
    after: list[Any] | None,
) -> ProductPage:
    """A page of `dataset` in file order, or for a search best match first; `after` is the decoded cursor."""
    if where.q:
        after_rank = (float(after[1]), int(after[2])) if after else None
        if after_rank is None or after_rank[0] >= repo.SUBSTRING_RANK:
            rows = await repo.search_page(
                conn, dataset_id=dataset_id, where=where, limit=limit + 1, after=after_rank, fuzzy=False
            )
            if len(rows) <= limit:  # substring matches ran out: continue with titles that only resemble q
                rows += await repo.search_page(
                    conn,
                    dataset_id=dataset_id,
                    where=where,
                    limit=limit + 1 - len(rows),
                    after=None,
                    fuzzy=True,
                )
        else:
            rows = await repo.search_page(
                conn, dataset_id=dataset_id, where=where, limit=limit + 1, after=after_rank, fuzzy=True
            )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor([str(dataset.id), rows[-1]["rank"], rows[-1]["position"]]) if more else ""
        return ProductPage(rows=rows, next_cursor=next_cursor, dataset=dataset)

    after_position = int(after[1]) if after else None
    rows = await repo.list_page(
        conn, dataset_id=dataset_id, where=where, limit=limit + 1, after_position=after_position
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([str(dataset.id), rows[-1]["position"]]) if more else ""
    return ProductPage(rows=rows, next_cursor=next_cursor, dataset=dataset)


class PageCache:
    """Recently served pages, least recently used out.

    A dataset version's products never change, so a page keyed by its dataset id (with the filters, the limit
    and the cursor) is never stale: when another version goes live, requests simply key on the new id. Random
    samples are never cached.
    """

    def __init__(self, max_pages: int = CACHED_PAGES) -> None:
        self._pages: OrderedDict[Hashable, ProductPage] = OrderedDict()
        self._max_pages = max_pages

    def get(self, key: Hashable) -> ProductPage | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: Hashable, page: ProductPage) -> None:
        self._pages[key] = page
        self._pages.move_to_end(key)
        while len(self._pages) > self._max_pages:
            self._pages.popitem(last=False)


async def get_product(
    *, reader: CatalogReader, product_id: str, dataset_version: str = ""
) -> tuple[Record, ServedDataset]:
    """One product of the live (or the named) version by its UUID or its retailer product_id."""
    wanted = product_id.strip()
    if not wanted:
        raise InvalidArgument("id is required", errors=[{"field": "id", "message": "required"}])
    if len(wanted) > max(MAX_PRODUCT_ID, 36) or _CONTROL.search(wanted):
        raise NotFound("product not found")
    async with _lazy_connection(reader) as lazy:
        dataset = (
            await _dataset_by_version(await lazy.get(), dataset_version)
            if dataset_version
            else await reader.live(lazy)
        )
        if dataset.id is None:
            raise NotFound("product not found: no catalog is live")
        conn = await lazy.get()
        row = None
        product_uuid = _as_uuid(wanted)
        if product_uuid is not None:
            row = await repo.get_by_id(conn, dataset_id=dataset.id, product_uuid=product_uuid)
        if row is None and len(wanted) <= MAX_PRODUCT_ID:
            row = await repo.get_by_product_id(conn, dataset_id=dataset.id, product_id=wanted)
    if row is None:
        raise NotFound("product not found")
    return row, dataset


async def batch_get_products(
    *, reader: CatalogReader, ids: list[str], retailer: str = ""
) -> tuple[list[Record], list[str], ServedDataset]:
    """The live products for up to 500 UUIDs or retailer product_ids, and the ids that matched nothing."""
    if len(ids) > MAX_BATCH:
        raise InvalidArgument(
            f"at most {MAX_BATCH} ids per call", errors=[{"field": "ids", "message": f"at most {MAX_BATCH}"}]
        )
    retailer = _filter_text(retailer, "retailer", MAX_RETAILER)
    dataset = await reader.live()
    if dataset.id is None or not ids:
        return [], _unique(ids), dataset
    uuids: set[uuid.UUID] = set()
    product_ids: set[str] = set()
    for raw in ids:
        wanted = raw.strip()
        if not wanted or _CONTROL.search(wanted):
            continue
        parsed = _as_uuid(wanted)
        if parsed is not None:
            uuids.add(parsed)
        if len(wanted) <= MAX_PRODUCT_ID:
            product_ids.add(wanted)
    async with reader.connection() as conn:
        rows = await repo.get_many(
            conn,
            dataset_id=dataset.id,
            product_uuids=sorted(uuids),
            product_ids=sorted(product_ids),
            retailer=retailer,
        )
    by_uuid = {row["id"]: row for row in rows}
    by_product_id: dict[str, Record] = {}
    for row in rows:
        by_product_id.setdefault(row["product_id"], row)
    found: dict[uuid.UUID, Record] = {}
    missing: list[str] = []
    for raw in _unique(ids):
        wanted = raw.strip()
        parsed = _as_uuid(wanted)
        match: Record | None = by_uuid.get(parsed) if parsed is not None else None
        if match is None:
            match = by_product_id.get(wanted)
        if match is None:
            missing.append(raw)
        else:
            found[match["id"]] = match
    return list(found.values()), missing, dataset


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _as_uuid(value: str) -> uuid.UUID | None:
    if len(value) not in (32, 36, 38):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _filter_text(value: str, field: str, limit: int) -> str:
    value = value.strip().lower()
    if len(value) > limit or _CONTROL.search(value):
        raise InvalidArgument(
            f"{field} is not valid",
            errors=[{"field": field, "message": f"at most {limit} printable characters"}],
        )
    return value


def _search_text(q: str) -> str:
    q = _SPACES.sub(" ", q).strip().lower()
    if len(q) > MAX_QUERY or _CONTROL.search(q):
        raise InvalidArgument(
            "q is not valid", errors=[{"field": "q", "message": f"at most {MAX_QUERY} printable characters"}]
        )
    return q


def _decode_list_cursor(cursor: str, *, search: bool) -> list[Any]:
    """[dataset_id, position] or, for a search, [dataset_id, rank, position]."""
    values = decode_cursor(cursor, arity=3 if search else 2)
    dataset_id, *rest = values
    ok = isinstance(dataset_id, str) and _as_uuid(dataset_id) is not None
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in rest)
    ok = ok and isinstance(rest[-1], int) and 0 <= rest[-1] < 2**31
    if not ok:
        raise InvalidArgument("cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}])
    return [uuid.UUID(dataset_id), *rest]


def _served(row: Record) -> ServedDataset:
    return ServedDataset(id=row["id"], version=row["version"], checksum_sha256=row["checksum_sha256"] or "")


async def _dataset_by_version(conn: asyncpg.Connection, version: str) -> ServedDataset:
    version = version.strip()
    row = None
    if len(version) <= MAX_VERSION and not _CONTROL.search(version):
        row = await repo.dataset_by_version(conn, version)
    if row is None or row["status"] not in SERVABLE:
        raise NotFound(f"dataset version {version[:MAX_VERSION]!r} not found")
    return _served(row)


async def _dataset_for_listing(
    reader: CatalogReader, lazy: _Connection, version: str, *, cursor_dataset: uuid.UUID | None
) -> ServedDataset:
    """The named version, else the cursor's (pages stay on one version), else the live one."""
    if version:
        dataset = await _dataset_by_version(await lazy.get(), version)
        if cursor_dataset is not None and cursor_dataset != dataset.id:
            raise InvalidArgument(
                "cursor belongs to another dataset version",
                errors=[{"field": "cursor", "message": "made for another dataset version"}],
            )
        return dataset
    if cursor_dataset is not None:
        live = await reader.live(lazy)
        if live.id == cursor_dataset:
            return live
        row = await repo.dataset_by_id(await lazy.get(), cursor_dataset)
        if row is None or row["status"] not in SERVABLE:
            raise InvalidArgument(
                "cursor has expired; start again", errors=[{"field": "cursor", "message": "expired"}]
            )
        return _served(row)
    return await reader.live(lazy)
