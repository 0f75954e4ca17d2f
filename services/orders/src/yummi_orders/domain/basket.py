"""Basket rules: one retailer per basket, at most 100 lines, priced from the live catalog on every read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from yummi_common.errors import Conflict, InvalidArgument
from yummi_common.money import CURRENCY
from yummi_orders.domain.lines import MAX_LINES, CatalogProduct, normalise_retailer, resolve_product


@dataclass(frozen=True)
class BasketItem:
    """A stored basket line: retailer product_id, quantity, and the price and title when it was added."""

    product_id: str
    retailer: str
    title: str
    quantity: int
    added_unit_price_minor: int
    added_at: datetime | None = None


@dataclass(frozen=True)
class PricedBasketLine:
    """A basket line priced now: `unavailable` lines count for nothing in the total."""

    item: BasketItem
    product: CatalogProduct | None  # the live product (even when unavailable), None when it is gone
    unit_price_minor: int
    line_total_minor: int
    price_changed: bool
    unavailable: bool


@dataclass(frozen=True)
class PricedBasket:
    lines: list[PricedBasketLine]
    total_minor: int
    currency: str = CURRENCY


def check_can_add(items: Sequence[BasketItem], *, product: CatalogProduct) -> None:
    """Refuse a line the basket cannot take: another retailer's product, or a 101st line."""
    retailer = normalise_retailer(product.retailer)
    others = {item.retailer for item in items if item.retailer != retailer}
    if others:
        raise Conflict(
            f"the basket holds {sorted(others)[0]} products; clear it before adding {retailer} products"
        )
    if len(items) >= MAX_LINES and all(item.product_id != product.product_id for item in items):
        raise InvalidArgument(
            f"a basket holds at most {MAX_LINES} lines",
            errors=[{"field": "product_id", "message": f"the basket already has {MAX_LINES} lines"}],
        )


def price_basket(items: Sequence[BasketItem], products: Iterable[CatalogProduct]) -> PricedBasket:
    """Price each stored line from the live catalog, flagging changed prices and unavailable products."""
    catalog = list(products)
    lines: list[PricedBasketLine] = []
    for item in items:
        product, _problem = resolve_product(item.product_id, retailer=item.retailer, products=catalog)
        if product is None:
            live = next(
                (
                    p
                    for p in catalog
                    if p.product_id == item.product_id and normalise_retailer(p.retailer) == item.retailer
                ),
                None,
            )
            lines.append(
                PricedBasketLine(
                    item=item,
                    product=live,
                    unit_price_minor=live.price_minor if live else item.added_unit_price_minor,
                    line_total_minor=0,
                    price_changed=live is not None and live.price_minor != item.added_unit_price_minor,
                    unavailable=True,
                )
            )
            continue
        lines.append(
            PricedBasketLine(
                item=item,
                product=product,
                unit_price_minor=product.price_minor,
                line_total_minor=product.price_minor * item.quantity,
                price_changed=product.price_minor != item.added_unit_price_minor,
                unavailable=False,
            )
        )
    return PricedBasket(lines=lines, total_minor=sum(line.line_total_minor for line in lines))
