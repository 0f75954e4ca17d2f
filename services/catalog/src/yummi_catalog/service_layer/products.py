"""Reading the catalog: listing (filters, search, random samples, keyset pages) and product lookup."""

from __future__ import annotations

import random as random_module
import re
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from yummi_catalog.adapters import datasets as dataset_repo
from yummi_catalog.adapters import products as repo
from yummi_catalog.adapters.products import ProductFilter
from yummi_catalog.adapters.tables import AnyRow
from yummi_catalog.domain.catalog_file import MAX_CATEGORY, MAX_PRODUCT_ID, MAX_RETAILER
from yummi_catalog.domain.datasets import MAX_VERSION, SERVABLE
from yummi_catalog.service_layer.datasets import page_limit
from yummi_common.db import UnitOfWork
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


@dataclass(frozen=True)
class ProductPage:
    rows: list[AnyRow]
    next_cursor: str
    dataset: ServedDataset


async def list_products(
    *,
    uow: UnitOfWork,
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
    dataset = await _dataset_for_listing(uow, dataset_version, cursor_dataset=after[0] if after else None)
    if dataset.id is None:
        return ProductPage(rows=[], next_cursor="", dataset=dataset)
    session = uow.session

    if random:
        start = random_module.random()  # noqa: S311 - a sampling offset, not a secret
        rows = await repo.random_sample(session, dataset_id=dataset.id, where=where, limit=limit, start=start)
        return ProductPage(rows=rows, next_cursor="", dataset=dataset)

    key = (dataset.id, limit, where, cursor)
    if cache is not None and (cached := cache.get(key)) is not None:
        return cached
    page = await _ordered_page(uow, dataset, dataset.id, where=where, limit=limit, after=after)
    if cache is not None:
        cache.put(key, page)
    return page


async def _ordered_page(
    uow: UnitOfWork,
    dataset: ServedDataset,
    dataset_id: uuid.UUID,
    *,
    where: ProductFilter,
    limit: int,
    after: list[Any] | None,
) -> ProductPage:
    """A page of `dataset` in file order, or for a search best match first; `after` is the decoded cursor."""
    session = uow.session
    if where.q:
        after_rank = (float(after[1]), int(after[2])) if after else None
        if after_rank is None or after_rank[0] >= repo.SUBSTRING_RANK:
            rows = await repo.search_page(
                session, dataset_id=dataset_id, where=where, limit=limit + 1, after=after_rank, fuzzy=False
            )
            if len(rows) <= limit:  # substring matches ran out: continue with titles that only resemble q
                rows += await repo.search_page(
                    session,
                    dataset_id=dataset_id,
                    where=where,
                    limit=limit + 1 - len(rows),
                    after=None,
                    fuzzy=True,
                )
        else:
            rows = await repo.search_page(
                session, dataset_id=dataset_id, where=where, limit=limit + 1, after=after_rank, fuzzy=True
            )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor([str(dataset.id), rows[-1].rank, rows[-1].position]) if more else ""
        return ProductPage(rows=rows, next_cursor=next_cursor, dataset=dataset)

    after_position = int(after[1]) if after else None
    rows = await repo.list_page(
        session, dataset_id=dataset_id, where=where, limit=limit + 1, after_position=after_position
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([str(dataset.id), rows[-1].position]) if more else ""
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
    *, uow: UnitOfWork, product_id: str, dataset_version: str = ""
) -> tuple[AnyRow, ServedDataset]:
    """One product of the live (or the named) version by its UUID or its retailer product_id."""
    wanted = product_id.strip()
    if not wanted:
        raise InvalidArgument("id is required", errors=[{"field": "id", "message": "required"}])
    if len(wanted) > max(MAX_PRODUCT_ID, 36) or _CONTROL.search(wanted):
        raise NotFound("product not found")
    dataset = await _dataset_by_version(uow, dataset_version) if dataset_version else await _active(uow)
    if dataset.id is None:
        raise NotFound("product not found: no catalog is live")
    row = None
    product_uuid = _as_uuid(wanted)
    if product_uuid is not None:
        row = await repo.get_by_id(uow.session, dataset_id=dataset.id, product_uuid=product_uuid)
    if row is None and len(wanted) <= MAX_PRODUCT_ID:
        row = await repo.get_by_product_id(uow.session, dataset_id=dataset.id, product_id=wanted)
    if row is None:
        raise NotFound("product not found")
    return row, dataset


async def batch_get_products(
    *, uow: UnitOfWork, ids: list[str], retailer: str = ""
) -> tuple[list[AnyRow], list[str], ServedDataset]:
    """The live products for up to 500 UUIDs or retailer product_ids, and the ids that matched nothing."""
    if len(ids) > MAX_BATCH:
        raise InvalidArgument(
            f"at most {MAX_BATCH} ids per call", errors=[{"field": "ids", "message": f"at most {MAX_BATCH}"}]
        )
    retailer = _filter_text(retailer, "retailer", MAX_RETAILER)
    dataset = await _active(uow)
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
    rows = await repo.get_many(
        uow.session,
        dataset_id=dataset.id,
        product_uuids=sorted(uuids),
        product_ids=sorted(product_ids),
        retailer=retailer,
    )
    by_uuid = {row.id: row for row in rows}
    by_product_id: dict[str, AnyRow] = {}
    for row in rows:
        by_product_id.setdefault(row.product_id, row)
    found: dict[uuid.UUID, AnyRow] = {}
    missing: list[str] = []
    for raw in _unique(ids):
        wanted = raw.strip()
        parsed = _as_uuid(wanted)
        match: AnyRow | None = by_uuid.get(parsed) if parsed is not None else None
        if match is None:
            match = by_product_id.get(wanted)
        if match is None:
            missing.append(raw)
        else:
            found[match.id] = match
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


def _served(row: AnyRow) -> ServedDataset:
    return ServedDataset(id=row.id, version=row.version, checksum_sha256=row.checksum_sha256 or "")


async def _active(uow: UnitOfWork) -> ServedDataset:
    row = await dataset_repo.active_dataset(uow.session)
    return _served(row) if row is not None else NO_DATASET


async def _dataset_by_version(uow: UnitOfWork, version: str) -> ServedDataset:
    version = version.strip()
    row = None
    if len(version) <= MAX_VERSION and not _CONTROL.search(version):
        row = await dataset_repo.get_dataset_by_version(uow.session, version)
    if row is None or row.status not in SERVABLE:
        raise NotFound(f"dataset version {version[:MAX_VERSION]!r} not found")
    return _served(row)


async def _dataset_for_listing(
    uow: UnitOfWork, version: str, *, cursor_dataset: uuid.UUID | None
) -> ServedDataset:
    """The named version, else the cursor's (pages stay on one version), else the live one."""
    if version:
        dataset = await _dataset_by_version(uow, version)
        if cursor_dataset is not None and cursor_dataset != dataset.id:
            raise InvalidArgument(
                "cursor belongs to another dataset version",
                errors=[{"field": "cursor", "message": "made for another dataset version"}],
            )
        return dataset
    if cursor_dataset is not None:
        row = await dataset_repo.get_dataset(uow.session, cursor_dataset)
        if row is None or row.status not in SERVABLE:
            raise InvalidArgument(
                "cursor has expired; start again", errors=[{"field": "cursor", "message": "expired"}]
            )
        return _served(row)
    return await _active(uow)
