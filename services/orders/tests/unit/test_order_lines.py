"""Order line rules and pricing from catalog products."""

from __future__ import annotations

import pytest

from yummi_common.errors import InvalidArgument
from yummi_orders.domain.lines import (
    CatalogProduct,
    LineRequest,
    price_lines,
    validate_order_request,
)

MILK = CatalogProduct(
    "0b5c3c4e-1111-4aaa-8aaa-000000000001", "woolworths", "W-MILK", "Milk 2L", 3499, "ZAR", True
)
BREAD = CatalogProduct(
    "0b5c3c4e-1111-4aaa-8aaa-000000000002", "woolworths", "W-BREAD", "Bread", 1899, "ZAR", True
)
GONE = CatalogProduct(
    "0b5c3c4e-1111-4aaa-8aaa-000000000003", "woolworths", "W-GONE", "Gone", 999, "ZAR", False
)
OTHER = CatalogProduct(
    "0b5c3c4e-1111-4aaa-8aaa-000000000004", "checkers", "C-EGGS", "Eggs", 5999, "ZAR", True
)
CATALOG = [MILK, BREAD, GONE, OTHER]


def fields(info: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {e["field"] for e in info.value.errors}


def test_valid_request_is_normalised() -> None:
    request = validate_order_request(retailer=" Woolworths ", lines=[(" W-MILK ", 2)], notes=" ring twice ")
    assert request.retailer == "woolworths"
    assert request.lines == (LineRequest("W-MILK", 2, 0),)
    assert request.notes == "ring twice"


def test_an_order_needs_at_least_one_line() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="woolworths", lines=[])
    assert fields(info) == {"items"}


def test_an_order_has_at_most_100_lines() -> None:
    validate_order_request(retailer="woolworths", lines=[(f"P{i}", 1) for i in range(100)])
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="woolworths", lines=[(f"P{i}", 1) for i in range(101)])
    assert fields(info) == {"items"}


@pytest.mark.parametrize("quantity", [0, -1, 100, 2**31 - 1])
def test_quantity_outside_1_to_99_is_refused(quantity: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="woolworths", lines=[("W-MILK", 1), ("W-BREAD", quantity)])
    assert fields(info) == {"items[1].quantity"}


@pytest.mark.parametrize("quantity", [1, 99])
def test_quantity_bounds_are_allowed(quantity: int) -> None:
    assert validate_order_request(retailer="w", lines=[("W-MILK", quantity)]).lines[0].quantity == quantity


@pytest.mark.parametrize("product_id", ["", "   ", "x" * 65, "bad\x00id", "tab\tid"])
def test_bad_product_ids_are_refused(product_id: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="woolworths", lines=[(product_id, 1)])
    assert fields(info) == {"items[0].product_id"}


def test_a_64_character_product_id_is_allowed() -> None:
    validate_order_request(retailer="woolworths", lines=[("x" * 64, 1)])


@pytest.mark.parametrize("retailer", ["", "  ", "r" * 65, "wool\x00worths"])
def test_bad_retailers_are_refused(retailer: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer=retailer, lines=[("W-MILK", 1)])
    assert fields(info) == {"retailer"}


def test_notes_longer_than_1000_characters_are_refused() -> None:
    validate_order_request(retailer="w", lines=[("W-MILK", 1)], notes="n" * 1000)
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="w", lines=[("W-MILK", 1)], notes="n" * 1001)
    assert fields(info) == {"notes"}


def test_notes_may_have_line_breaks_but_no_nul() -> None:
    validate_order_request(retailer="w", lines=[("W-MILK", 1)], notes="gate code 1234\nthanks")
    with pytest.raises(InvalidArgument):
        validate_order_request(retailer="w", lines=[("W-MILK", 1)], notes="a\x00b")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="", lines=[("", 0)], notes="n" * 2000)
    assert fields(info) == {"retailer", "items[0].product_id", "items[0].quantity", "notes"}


def test_duplicate_product_ids_are_merged_at_the_first_position() -> None:
    request = validate_order_request(retailer="w", lines=[("A", 2), ("B", 1), ("A", 3)])
    assert request.lines == (LineRequest("A", 5, 0), LineRequest("B", 1, 1))


def test_merged_duplicates_above_99_are_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_order_request(retailer="w", lines=[("A", 50), ("A", 50)])
    assert fields(info) == {"items[0].quantity"}


def test_lines_are_priced_from_the_catalog() -> None:
    lines = price_lines(
        retailer="woolworths",
        lines=[LineRequest("W-MILK", 2, 0), LineRequest(BREAD.id, 1, 1)],
        products=CATALOG,
    )
    assert [
        (line.product_id, line.title, line.unit_price_minor, line.line_total_minor) for line in lines
    ] == [
        ("W-MILK", "Milk 2L", 3499, 6998),
        ("W-BREAD", "Bread", 1899, 1899),
    ]
    assert lines[1].catalog_id == BREAD.id


def test_a_product_named_by_uuid_and_by_product_id_is_merged() -> None:
    lines = price_lines(
        retailer="woolworths",
        lines=[LineRequest("W-MILK", 2, 0), LineRequest(MILK.id.upper(), 3, 1)],
        products=CATALOG,
    )
    assert [(line.product_id, line.quantity) for line in lines] == [("W-MILK", 5)]


def test_unknown_unavailable_and_foreign_products_are_each_named() -> None:
    with pytest.raises(InvalidArgument) as info:
        price_lines(
            retailer="woolworths",
            lines=[
                LineRequest("W-MILK", 1, 0),
                LineRequest("NOPE", 1, 1),
                LineRequest("W-GONE", 1, 2),
                LineRequest("C-EGGS", 1, 3),
            ],
            products=CATALOG,
        )
    errors = {e["field"]: e["message"] for e in info.value.errors}
    assert errors == {
        "items[1].product_id": "unknown product NOPE",
        "items[2].product_id": "product W-GONE is unavailable",
        "items[3].product_id": "product C-EGGS is sold by checkers, not woolworths",
    }


def test_a_product_priced_in_another_currency_cannot_be_ordered() -> None:
    dollars = CatalogProduct("id-usd", "woolworths", "W-USD", "Import", 100, "USD", True)
    with pytest.raises(InvalidArgument):
        price_lines(retailer="woolworths", lines=[LineRequest("W-USD", 1, 0)], products=[dollars])
