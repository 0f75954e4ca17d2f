"""Order line rules: what a valid order request is, and how its lines are priced from catalog products.

Duplicate product ids in one request are merged (quantities added, the merged line keeps the position of its
first occurrence); a merged quantity above 99 is refused. Lines naming the same product two ways (its UUID
and its retailer product_id) are merged the same way once the catalog has resolved them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from yummi_common.errors import InvalidArgument
from yummi_common.money import CURRENCY
from yummi_orders.domain.orders import OrderLine

MAX_LINES = 100
MIN_QUANTITY = 1
MAX_QUANTITY = 99
MAX_PRODUCT_ID_LENGTH = 64
MAX_RETAILER_LENGTH = 64
MAX_NOTES_LENGTH = 1000

_ALLOWED_LAYOUT = {"\n", "\r", "\t"}


def _has_control(value: str, *, allow_layout: bool = False) -> bool:
    """Control characters (NUL above all: Postgres refuses it in text) have no place in these fields."""
    return any(
        (ord(ch) < 32 or ord(ch) == 127) and not (allow_layout and ch in _ALLOWED_LAYOUT) for ch in value
    )


def check_text(
    value: str, *, field: str, max_length: int, required: bool, multiline: bool = False
) -> list[dict[str, Any]]:
    """The problems of one free-text field (empty list when it is fine)."""
    if required and not value.strip():
        return [{"field": field, "message": "is required"}]
    if len(value) > max_length:
        return [{"field": field, "message": f"must be at most {max_length} characters"}]
    if _has_control(value, allow_layout=multiline):
        return [{"field": field, "message": "must not contain control characters"}]
    return []


def normalise_retailer(value: str) -> str:
    return value.strip().lower()


def check_retailer(value: str, *, field: str = "retailer") -> list[dict[str, Any]]:
    return check_text(value.strip(), field=field, max_length=MAX_RETAILER_LENGTH, required=True)


def check_product_id(value: str, *, field: str) -> list[dict[str, Any]]:
    return check_text(value.strip(), field=field, max_length=MAX_PRODUCT_ID_LENGTH, required=True)


def check_quantity(value: int, *, field: str) -> list[dict[str, Any]]:
    if not MIN_QUANTITY <= value <= MAX_QUANTITY:
        return [{"field": field, "message": f"must be between {MIN_QUANTITY} and {MAX_QUANTITY}"}]
    return []


def check_notes(value: str, *, field: str = "notes") -> list[dict[str, Any]]:
    return check_text(value, field=field, max_length=MAX_NOTES_LENGTH, required=False, multiline=True)


@dataclass(frozen=True)
class LineRequest:
    """A requested line: a product reference (UUID or retailer product_id) and a quantity.

    `index` is the position of the line in the caller's request, so problems name the field the caller sent.
    """

    product_id: str
    quantity: int
    index: int = 0


@dataclass(frozen=True)
class OrderRequest:
    """A validated order request, duplicates merged."""

    retailer: str
    lines: tuple[LineRequest, ...]
    notes: str


def merge_duplicate_lines(lines: Sequence[LineRequest], *, key: Any = None) -> tuple[LineRequest, ...]:
    """Merge lines with the same key (default: the product reference); InvalidArgument when a sum is > 99."""
    merged: dict[Any, LineRequest] = {}
    for line in lines:
        k = key(line) if key else line.product_id
        if k in merged:
            first = merged[k]
            merged[k] = LineRequest(first.product_id, first.quantity + line.quantity, first.index)
        else:
            merged[k] = line
    errors = [
        {
            "field": f"items[{line.index}].quantity",
            "message": f"lines for one product add up to {line.quantity}; at most {MAX_QUANTITY} allowed",
        }
        for line in merged.values()
        if line.quantity > MAX_QUANTITY
    ]
    if errors:
        raise InvalidArgument("order is not valid", errors=errors)
    return tuple(merged.values())


def validate_order_request(
    *, retailer: str, lines: Sequence[tuple[str, int]], notes: str = ""
) -> OrderRequest:
    """Check every rule of an order request and report all problems at once (InvalidArgument)."""
    errors = check_retailer(retailer)
    if not lines:
        errors.append({"field": "items", "message": "at least one line is required"})
    elif len(lines) > MAX_LINES:
        errors.append({"field": "items", "message": f"at most {MAX_LINES} lines are allowed"})
    else:
        for i, (product_id, quantity) in enumerate(lines):
            errors += check_product_id(product_id, field=f"items[{i}].product_id")
            errors += check_quantity(quantity, field=f"items[{i}].quantity")
    errors += check_notes(notes)
    if errors:
        raise InvalidArgument("order is not valid", errors=errors)
    requested = [LineRequest(pid.strip(), qty, i) for i, (pid, qty) in enumerate(lines)]
    return OrderRequest(
        retailer=normalise_retailer(retailer), lines=merge_duplicate_lines(requested), notes=notes.strip()
    )


@dataclass(frozen=True)
class CatalogProduct:
    """What pricing needs from a live catalog product."""

    id: str
    retailer: str
    product_id: str
    title: str
    price_minor: int
    currency: str
    available: bool
    source: Any = field(default=None, compare=False, repr=False)  # the catalog's own message, for display

    def matches(self, reference: str) -> bool:
        """Whether `reference` names this product: its UUID (any case) or its retailer product_id."""
        return reference == self.product_id or reference.lower() == self.id.lower()


def resolve_product(
    reference: str, *, retailer: str, products: Iterable[CatalogProduct]
) -> tuple[CatalogProduct | None, str | None]:
    """The product `reference` names at `retailer`, or None and why not (unknown, elsewhere, unavailable)."""
    candidates = [p for p in products if p.matches(reference)]
    if not candidates:
        return None, f"unknown product {reference}"
    own = [p for p in candidates if normalise_retailer(p.retailer) == retailer]
    if not own:
        return None, f"product {reference} is sold by {candidates[0].retailer}, not {retailer}"
    product = own[0]
    if not product.available:
        return None, f"product {reference} is unavailable"
    if product.currency != CURRENCY or product.price_minor < 0:
        return None, f"product {reference} has no valid {CURRENCY} price"
    return product, None


def price_lines(
    *, retailer: str, lines: Sequence[LineRequest], products: Iterable[CatalogProduct]
) -> list[OrderLine]:
    """Price each line from the catalog's products; InvalidArgument naming every line that cannot be had."""
    catalog = list(products)
    resolved: list[tuple[LineRequest, CatalogProduct]] = []
    errors: list[dict[str, Any]] = []
    for line in lines:
        product, problem = resolve_product(line.product_id, retailer=retailer, products=catalog)
        if product is None:
            errors.append({"field": f"items[{line.index}].product_id", "message": problem})
        else:
            resolved.append((line, product))
    if errors:
        raise InvalidArgument(
            errors[0]["message"] if len(errors) == 1 else "some products cannot be ordered", errors=errors
        )
    by_catalog_id = {product.id: product for _, product in resolved}
    merged = merge_duplicate_lines(
        [LineRequest(product.id, line.quantity, line.index) for line, product in resolved]
    )
    return [
        OrderLine(
            product_id=by_catalog_id[line.product_id].product_id,
            title=by_catalog_id[line.product_id].title,
            quantity=line.quantity,
            unit_price_minor=by_catalog_id[line.product_id].price_minor,
            catalog_id=by_catalog_id[line.product_id].id,
        )
        for line in merged
    ]
