"""The catalog reads with no gateway hop: one FastAPI + asyncpg process running the catalog service's own SQL.

It answers `GET /v1/catalog` (random sample, `q` search, file-order page) and `GET /v1/products/{id}` with the
same JSON shapes as the gateway, straight from the `catalog` schema the stack populated, so the benchmark can
price what the gateway → gRPC → catalog path costs against the same queries served in one process.

The SQL strings are what SQLAlchemy compiled the catalog's `adapters/products.py` statements to (asyncpg
dialect); the service now runs equivalent hand-written SQL straight on asyncpg, outside any transaction, as
this app does. Like the service, it keeps the live dataset in memory and re-reads it every 2 seconds
(CATALOG_LIVE_REFRESH_SECONDS). Differences, on purpose: no page cache, no rate limits, no auth, no ETag.
Run it: `python bench/direct_app.py --database-url postgresql://... --port 8100`.
"""

from __future__ import annotations

import argparse
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from starlette.responses import Response

from yummi_common.pagination import encode_cursor

PRODUCT_SELECT = (
    "SELECT catalog.products.id, catalog.products.retailer, catalog.products.product_id, "
    "catalog.products.catalog_ref_id, catalog.products.title, catalog.products.url, "
    "catalog.products.image_url, "
    "catalog.products.price_minor, catalog.products.currency, catalog.products.category, "
    "catalog.products.available, CAST(catalog.products.payload AS TEXT) AS attributes_json"
)
ACTIVE_DATASET = (
    "SELECT catalog.datasets.id, catalog.datasets.name, catalog.datasets.version, catalog.datasets.status, "
    "catalog.datasets.source, catalog.datasets.notes, catalog.datasets.item_count, "
    "catalog.datasets.checksum_sha256, catalog.datasets.size_bytes, catalog.datasets.created_by, "
    "catalog.datasets.created_at, catalog.datasets.updated_at, catalog.datasets.activated_at, "
    "catalog.datasets.error, catalog.datasets.progress_done, catalog.datasets.progress_total "
    "FROM catalog.datasets WHERE catalog.datasets.status = $1::VARCHAR"
)
RANDOM_FROM = (
    PRODUCT_SELECT + " FROM catalog.products WHERE catalog.products.dataset_id = $1::UUID "
    "AND catalog.products.rand >= $2::FLOAT(53) ORDER BY catalog.products.rand LIMIT $3::INTEGER"
)
RANDOM_WRAP = (
    PRODUCT_SELECT + " FROM catalog.products WHERE catalog.products.dataset_id = $1::UUID "
    "AND catalog.products.rand < $2::FLOAT(53) ORDER BY catalog.products.rand LIMIT $3::INTEGER"
)
# Tier 1: titles containing q (rank 3 when they start with it, else 2).
SEARCH_CONTAINS = (
    PRODUCT_SELECT + ", catalog.products.position, CASE WHEN (lower(catalog.products.title) LIKE $1::VARCHAR "
    "ESCAPE '\\') THEN $2::FLOAT(53) ELSE $3::FLOAT(53) END AS rank FROM catalog.products "
    "WHERE catalog.products.dataset_id = $4::UUID "
    "AND lower(catalog.products.title) LIKE $5::VARCHAR ESCAPE '\\' "
    "ORDER BY CASE WHEN (lower(catalog.products.title) LIKE $1::VARCHAR ESCAPE '\\') THEN $2::FLOAT(53) "
    "ELSE $3::FLOAT(53) END DESC, catalog.products.position LIMIT $6::INTEGER"
)
# Tier 2: titles that only resemble q (pg_trgm word similarity).
SEARCH_RESEMBLES = (
    PRODUCT_SELECT + ", catalog.products.position, CAST(word_similarity($1::VARCHAR, "
    "lower(catalog.products.title)) AS FLOAT(53)) AS rank FROM catalog.products "
    "WHERE catalog.products.dataset_id = $2::UUID AND (lower(catalog.products.title) %> $3::VARCHAR) "
    "AND lower(catalog.products.title) NOT LIKE $4::VARCHAR ESCAPE '\\' "
    "ORDER BY CAST(word_similarity($1::VARCHAR, lower(catalog.products.title)) AS FLOAT(53)) DESC, "
    "catalog.products.position LIMIT $5::INTEGER"
)
LIST_PAGE = (
    PRODUCT_SELECT + ", catalog.products.position FROM catalog.products "
    "WHERE catalog.products.dataset_id = $1::UUID ORDER BY catalog.products.position LIMIT $2::INTEGER"
)
BY_ID = (
    PRODUCT_SELECT + " FROM catalog.products WHERE catalog.products.dataset_id = $1::UUID "
    "AND catalog.products.id = $2::UUID"
)
BY_PRODUCT_ID = (
    PRODUCT_SELECT + " FROM catalog.products WHERE catalog.products.dataset_id = $1::UUID "
    "AND catalog.products.product_id = $2::VARCHAR ORDER BY catalog.products.retailer LIMIT $3::INTEGER"
)
SUBSTRING_RANK = 2.0
LIVE_REFRESH_SECONDS = 2.0  # the service's CATALOG_LIVE_REFRESH_SECONDS default
_SPACES = re.compile(r"\s+")


def _escape_like(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _attributes(raw: str | None) -> Any:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def product_json(row: asyncpg.Record, version: str) -> dict[str, Any]:
    """The public Product shape (the gateway's serializer, from a row instead of a protobuf message)."""
    return {
        "id": str(row["id"]),
        "retailer": row["retailer"],
        "product_id": row["product_id"],
        "catalog_ref_id": row["catalog_ref_id"] or None,
        "title": row["title"],
        "url": row["url"] or None,
        "image_url": row["image_url"] or None,
        "price_minor": row["price_minor"],
        "currency": row["currency"] or "ZAR",
        "category": row["category"] or None,
        "available": row["available"],
        "attributes": _attributes(row["attributes_json"]),
        "dataset_version": version,
    }


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def create_app(database_url: str, pool_size: int) -> FastAPI:
    """The direct app over one asyncpg pool."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        app.state.pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    live: dict[str, Any] = {"row": None, "read_at": 0.0}

    async def active_dataset(conn: asyncpg.Connection) -> asyncpg.Record | None:
        """The live dataset, read at most every LIVE_REFRESH_SECONDS (as the catalog service caches it)."""
        if live["row"] is None or time.monotonic() - live["read_at"] >= LIVE_REFRESH_SECONDS:
            live["row"], live["read_at"] = await conn.fetchrow(ACTIVE_DATASET, "active"), time.monotonic()
        return live["row"]

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/v1/catalog")
    async def list_catalog(
        request: Request,
        limit: int = Query(50, ge=1, le=500),
        random_pick: bool = Query(False, alias="random"),
        q: str | None = Query(None, max_length=200),
    ) -> Response:
        search = _SPACES.sub(" ", q or "").strip().lower()[:100]
        async with request.app.state.pool.acquire() as conn:
            dataset = await active_dataset(conn)
            if dataset is None:
                return _json({"items": [], "next_cursor": None, "dataset_version": None})
            dataset_id, version = dataset["id"], dataset["version"]
            next_cursor = None
            if random_pick:
                start = random.random()  # noqa: S311 - a sampling offset, as in the catalog service
                rows = list(await conn.fetch(RANDOM_FROM, dataset_id, start, limit))
                if len(rows) < limit:
                    rows += await conn.fetch(RANDOM_WRAP, dataset_id, start, limit - len(rows))
            elif search:
                escaped = _escape_like(search)
                rows = list(
                    await conn.fetch(
                        SEARCH_CONTAINS,
                        f"{escaped}%",
                        3.0,
                        SUBSTRING_RANK,
                        dataset_id,
                        f"%{escaped}%",
                        limit + 1,
                    )
                )
                if len(rows) <= limit:
                    rows += await conn.fetch(
                        SEARCH_RESEMBLES, search, dataset_id, search, f"%{escaped}%", limit + 1 - len(rows)
                    )
                if len(rows) > limit:
                    rows = rows[:limit]
                    next_cursor = encode_cursor([str(dataset_id), rows[-1]["rank"], rows[-1]["position"]])
            else:
                rows = list(await conn.fetch(LIST_PAGE, dataset_id, limit + 1))
                if len(rows) > limit:
                    rows = rows[:limit]
                    next_cursor = encode_cursor([str(dataset_id), rows[-1]["position"]])
        return _json(
            {
                "items": [product_json(row, version) for row in rows],
                "next_cursor": next_cursor,
                "dataset_version": version,
            }
        )

    @app.get("/v1/products/{product_id}")
    async def get_product(request: Request, product_id: str) -> Response:
        wanted = product_id.strip()
        async with request.app.state.pool.acquire() as conn:
            dataset = await active_dataset(conn)
            if dataset is None or not wanted or len(wanted) > 128:
                raise HTTPException(404, "product not found")
            row = None
            try:
                parsed = uuid.UUID(wanted) if len(wanted) in (32, 36, 38) else None
            except ValueError:
                parsed = None
            if parsed is not None:
                row = await conn.fetchrow(BY_ID, dataset["id"], parsed)
            if row is None:
                row = await conn.fetchrow(BY_PRODUCT_ID, dataset["id"], wanted, 1)
        if row is None:
            raise HTTPException(404, "product not found")
        return _json(product_json(row, dataset["version"]))

    return app


def main(argv: list[str] | None = None) -> int:
    import importlib.util

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", required=True, help="the database whose catalog schema is populated"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--pool-size", type=int, default=10, help="asyncpg pool (the services' DB_POOL_SIZE)")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.database_url, args.pool_size),
        host=args.host,
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
