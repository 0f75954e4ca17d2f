"""Basket rules: one retailer, at most 100 lines, live pricing with changed-price and unavailable flags."""

from __future__ import annotations

import pytest

from yummi_common.errors import Conflict, InvalidArgument
from yummi_orders.domain.basket import BasketItem, check_can_add, price_basket
from yummi_orders.domain.lines import CatalogProduct

MILK = CatalogProduct("id-milk", "woolworths", "W-MILK", "Milk", 3499, "ZAR", True)
BREAD = CatalogProduct("id-bread", "woolworths", "W-BREAD", "Bread", 2099, "ZAR", True)
GONE = CatalogProduct("id-gone", "woolworths", "W-GONE", "Gone", 999, "ZAR", False)
EGGS = CatalogProduct("id-eggs", "Checkers", "C-EGGS", "Eggs", 5999, "ZAR", True)


def item(product_id: str, quantity: int, added: int, retailer: str = "woolworths") -> BasketItem:
    return BasketItem(product_id, retailer, product_id.title(), quantity, added)


def test_basket_is_priced_now_and_flags_changed_prices() -> None:
    basket = price_basket([item("W-MILK", 2, 3499), item("W-BREAD", 1, 1899)], [MILK, BREAD])
    assert [(line.line_total_minor, line.price_changed, line.unavailable) for line in basket.lines] == [
        (6998, False, False),
        (2099, True, False),
    ]
    assert basket.total_minor == 6998 + 2099


def test_unavailable_and_vanished_products_are_flagged_and_not_counted() -> None:
    basket = price_basket(
        [item("W-GONE", 1, 999), item("W-VANISHED", 3, 500), item("W-MILK", 1, 3499)], [GONE, MILK]
    )
    assert [(line.unavailable, line.line_total_minor) for line in basket.lines] == [
        (True, 0),
        (True, 0),
        (False, 3499),
    ]
    assert basket.lines[0].product is GONE
    assert basket.lines[1].product is None
    assert basket.total_minor == 3499


def test_a_product_of_another_retailer_cannot_join_the_basket() -> None:
    with pytest.raises(Conflict):
        check_can_add([item("W-MILK", 1, 3499)], product=EGGS)


def test_the_basket_holds_at_most_100_lines_but_existing_lines_can_change() -> None:
    full = [item(f"W-{i}", 1, 100) for i in range(100)]
    with pytest.raises(InvalidArgument):
        check_can_add(full, product=MILK)
    check_can_add(full, product=CatalogProduct("id", "woolworths", "W-5", "x", 1, "ZAR", True))
