"""Benchmark: a 100,000-item catalog imported through the upload path end to end, against a naive ORM insert.

    .venv/bin/python bench/catalog_import.py [--items 100000] [--orm-rows 10000] [--json out.json]
    .venv/bin/python bench/catalog_import.py --gateway http://host:8000 --token T   # a running stack

Without --gateway it starts the gateway and catalog here (`yummi_devstack.start_services`) on a fresh database
of the Postgres at DATABASE_URL (Redis/NATS from REDIS_URL/NATS_URL; embedded servers when unset) and drops
it afterwards. The import is what an admin does: POST /v1/admin/datasets, PUT the file to the upload target,
POST .../complete with the SHA-256, poll GET /v1/admin/datasets/{id} until `ready`. The baseline inserts the
same (already parsed) items into a scratch schema with the same indexes as a products partition, through the
SQLAlchemy ORM: one `session.add` per row, a commit every 1,000; `--orm-rows` of them, extrapolated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import BigInteger, Float, Index, MetaData, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_common import (  # noqa: E402 - the bench folder is not a package
    add_stack_arguments,
    bench_stack,
    catalog_file,
    cpu_seconds,
    cpu_used,
    import_through_upload,
    machine,
    peak_rss_mb,
)

from yummi_catalog.domain.catalog_file import parse_catalog, product_uuid  # noqa: E402
from yummi_common.settings import normalise_database_url  # noqa: E402

SCRATCH = "bench_orm"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCRATCH)


class Product(Base):
    """One products row, as a naive ORM model would map it (same columns and indexes as a partition)."""

    __tablename__ = "products"
    dataset_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    position: Mapped[int]
    retailer: Mapped[str] = mapped_column(Text)
    product_id: Mapped[str] = mapped_column(Text)
    catalog_ref_id: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    image_url: Mapped[str] = mapped_column(Text)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    available: Mapped[bool]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    rand: Mapped[float] = mapped_column(Float(precision=53), server_default=text("random()"))
    __table_args__ = (
        UniqueConstraint("dataset_id", "position"),
        UniqueConstraint("dataset_id", "product_id", "retailer"),
        Index("ix_bench_category", func.lower(text("category")), "position"),
        Index("ix_bench_rand", "rand"),
    )


async def orm_baseline(database_url: str, content: bytes, rows: int) -> dict[str, float | int]:
    """Insert the first `rows` valid items one `session.add` at a time, committing every 1,000."""
    items = parse_catalog(content).items[:rows]
    payloads = [orjson.loads(item.attributes_json) for item in items]
    engine = create_async_engine(normalise_database_url(database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
            await conn.run_sync(Base.metadata.create_all)
            trgm = (
                await conn.execute(
                    text(
                        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                        "WHERE e.extname = 'pg_trgm'"
                    )
                )
            ).scalar() or "public"
            await conn.execute(
                text(
                    f"CREATE INDEX ix_bench_title ON {SCRATCH}.products "
                    f'USING gin (lower(title) "{trgm}".gin_trgm_ops)'
                )
            )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        dataset_id = uuid.uuid4()
        async with sessions() as session:
            backend = [(await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()]
            await session.commit()
            postgres_before, client_before = cpu_seconds(backend), time.process_time()
            started = time.perf_counter()
            for n, (item, payload) in enumerate(zip(items, payloads, strict=True), start=1):
                session.add(
                    Product(
                        dataset_id=dataset_id,
                        id=product_uuid(item.retailer, item.product_id),
                        position=item.index,
                        retailer=item.retailer,
                        product_id=item.product_id,
                        catalog_ref_id=item.catalog_ref_id,
                        title=item.title,
                        url=item.url,
                        image_url=item.image_url,
                        price_minor=item.price_minor,
                        currency="ZAR",
                        category=item.category,
                        available=item.available,
                        payload=payload,
                    )
                )
                if n % 1000 == 0:
                    await session.commit()
            await session.commit()
            seconds = time.perf_counter() - started
            client_cpu = time.process_time() - client_before
            postgres_cpu = cpu_used(postgres_before, cpu_seconds(backend))
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {SCRATCH} CASCADE"))
    finally:
        await engine.dispose()
    return {
        "rows": len(items),
        "seconds": seconds,
        "client_cpu_s": client_cpu,
        "postgres_cpu_s": postgres_cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="catalog size (default 100,000)")
    parser.add_argument("--orm-rows", type=int, default=10_000, help="rows for the ORM baseline (0: skip it)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    add_stack_arguments(parser)
    args = parser.parse_args()

    path = catalog_file(args.items)
    before = machine()
    with bench_stack(args) as stack:
        with stack.admin() as admin:
            result: dict[str, Any] = import_through_upload(admin, path, activate=True, stack=stack)
        result["catalog_peak_rss_mb"] = peak_rss_mb(stack.catalog_pid())
        if args.orm_rows and stack.database_url:
            baseline = asyncio.run(orm_baseline(stack.database_url, path.read_bytes(), args.orm_rows))
            baseline["extrapolated_s"] = baseline["seconds"] * result["items"] / baseline["rows"]
            result["orm"] = baseline
    result["machine_before"] = before
    result["loadavg_after"] = machine()["loadavg"]
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def report(r: dict[str, Any]) -> None:
    m = r["machine_before"]
    print(f"machine: {m['nproc']} cpu ({m['cpu']}), {m['ram_gb']} GB RAM, python {m['python']}")
    print(f"load average before/after: {m['loadavg']} / {r['loadavg_after']}")
    print(f"catalog: {r['items']:,} items, {r['bytes'] / 1e6:.1f} MB -> version {r['version']}")
    print(
        f"end to end (create, upload, complete, poll until ready): {r['total_s']:.2f} s  "
        f"[create {r['create_s']:.2f}, upload {r['upload_s']:.2f}, complete {r['complete_s']:.2f}, "
        f"indexing {r['indexing_s']:.2f}]  = {r['items'] / r['total_s']:,.0f} items/s"
    )
    if r.get("catalog_cpu_s") or r.get("postgres_cpu_s"):
        print(
            f"CPU spent meanwhile: catalog process {r['catalog_cpu_s']:.2f} s, "
            f"its Postgres backends {r['postgres_cpu_s']:.2f} s"
        )
    if r.get("catalog_peak_rss_mb"):
        print(f"catalog process peak RSS: {r['catalog_peak_rss_mb']:.0f} MB")
    if "orm" in r:
        orm = r["orm"]
        print(
            f"ORM baseline (session.add per row, commit per 1,000): {orm['rows']:,} rows in "
            f"{orm['seconds']:.2f} s -> {r['items']:,} rows ~ {orm['extrapolated_s']:.1f} s (extrapolated)"
        )
        scale = r["items"] / orm["rows"]
        client, postgres = orm["client_cpu_s"] * scale, orm["postgres_cpu_s"] * scale
        ours = r["catalog_cpu_s"] + r["postgres_cpu_s"]
        print(
            f"ORM CPU: client {client:.1f} s + Postgres {postgres:.1f} s (extrapolated) vs {ours:.1f} s for "
            f"the whole import -> {(client + postgres) / max(ours, 1e-9):.1f}x the work"
        )
        print(
            f"ratio: end to end {orm['extrapolated_s'] / r['total_s']:.1f}x faster than the ORM insert "
            f"alone; indexing alone {orm['extrapolated_s'] / r['indexing_s']:.1f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
