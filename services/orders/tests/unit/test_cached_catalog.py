"""Pricing's cache of live products: kept for the TTL, dropped at an activation, unknown ones never kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from yummi_orders.adapters.catalog import CachedCatalog
from yummi_orders.domain.lines import CatalogProduct


def product(n: int, *, price: int = 1000, retailer: str = "woolworths") -> CatalogProduct:
    return CatalogProduct(
        id=f"00000000-0000-4000-8000-{n:012d}",
        retailer=retailer,
        product_id=f"WW{n:04d}",
        title=f"product {n}",
        price_minor=price,
        currency="ZAR",
        available=True,
    )


class Catalog:
    """The live catalog: what it holds now, and every batch it was asked for."""

    def __init__(self, *products: CatalogProduct) -> None:
        self.products = list(products)
        self.asked: list[list[str]] = []
        self.gate: asyncio.Event | None = None

    async def batch_get_products(self, references: Sequence[str]) -> list[CatalogProduct]:
        self.asked.append(list(references))
        if self.gate is not None:
            await self.gate.wait()
        return [p for p in self.products if any(p.matches(r) for r in references)]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_products_are_kept_for_the_ttl_and_only_the_missing_ones_are_asked_for() -> None:
    live = Catalog(product(1), product(2), product(3))
    clock = Clock()
    cached = CachedCatalog(live, ttl=2.0, clock=clock)
    assert {p.product_id for p in await cached.batch_get_products(["WW0001", "WW0002"])} == {
        "WW0001",
        "WW0002",
    }
    answer = await cached.batch_get_products(["WW0002", "WW0003", "WW0002"])
    assert {p.product_id for p in answer} == {"WW0002", "WW0003"}
    assert live.asked == [["WW0001", "WW0002"], ["WW0003"]]
    live.products[0] = product(1, price=1500)  # a change the catalog would announce (see below)
    clock.now += 2.0
    assert [p.price_minor for p in await cached.batch_get_products(["WW0001"])] == [1500]
    assert live.asked[-1] == ["WW0001"]


async def test_a_product_named_twice_is_answered_once() -> None:
    live = Catalog(product(1))
    cached = CachedCatalog(live, ttl=2.0, clock=Clock())
    both = [product(1).id, "WW0001"]
    assert len(await cached.batch_get_products(both)) == 1
    assert len(await cached.batch_get_products(both)) == 1
    assert len(live.asked) == 1


async def test_an_activation_drops_everything_and_a_fetch_it_raced_is_not_kept() -> None:
    live = Catalog(product(1))
    cached = CachedCatalog(live, ttl=2.0, clock=Clock())
    await cached.batch_get_products(["WW0001"])
    live.products = [product(1, price=900)]
    cached.invalidate()
    assert [p.price_minor for p in await cached.batch_get_products(["WW0001"])] == [900]

    live.gate = asyncio.Event()
    cached.invalidate()
    racing = asyncio.create_task(cached.batch_get_products(["WW0001"]))
    await asyncio.sleep(0)
    cached.invalidate()  # the next version is announced while the old one's answer is on its way
    live.gate.set()
    await racing
    live.gate = None
    live.products = [product(1, price=800)]
    assert [p.price_minor for p in await cached.batch_get_products(["WW0001"])] == [800]


async def test_unknown_products_are_never_kept() -> None:
    live = Catalog()
    cached = CachedCatalog(live, ttl=2.0, clock=Clock())
    assert await cached.batch_get_products(["WW0009"]) == []
    live.products = [product(9)]  # added by a new version
    assert [p.product_id for p in await cached.batch_get_products(["WW0009"])] == ["WW0009"]


async def test_the_same_retailer_id_at_two_retailers_keeps_both() -> None:
    elsewhere = CatalogProduct(
        id="00000000-0000-4000-8000-999999999999",
        retailer="checkers",
        product_id="WW0001",
        title="elsewhere",
        price_minor=1100,
        currency="ZAR",
        available=True,
    )
    live = Catalog(product(1), elsewhere)
    cached = CachedCatalog(live, ttl=2.0, clock=Clock())
    for _ in range(2):
        assert {p.retailer for p in await cached.batch_get_products(["WW0001"])} == {"woolworths", "checkers"}
    assert len(live.asked) == 1


async def test_a_zero_ttl_asks_every_time() -> None:
    live = Catalog(product(1))
    cached = CachedCatalog(live, ttl=0, clock=Clock())
    for _ in range(3):
        await cached.batch_get_products(["WW0001"])
    assert len(live.asked) == 3
