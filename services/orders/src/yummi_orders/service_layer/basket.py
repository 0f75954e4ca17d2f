"""The user's server-side basket: priced from the live catalog on every read, and checkout into an order."""

from __future__ import annotations

import uuid

from yummi_common.db import UnitOfWork
from yummi_common.errors import Conflict, InvalidArgument, YummiError
from yummi_orders.adapters import repository as repo
from yummi_orders.adapters.catalog import Catalog
from yummi_orders.domain.basket import BasketItem, PricedBasket, check_can_add, price_basket
from yummi_orders.domain.lines import (
    LineRequest,
    check_notes,
    check_product_id,
    check_quantity,
    normalise_retailer,
    price_lines,
    resolve_product,
)
from yummi_orders.domain.orders import Order
from yummi_orders.service_layer.idempotency import idempotency_key as idempotency_key_of
from yummi_orders.service_layer.idempotency import keyed_order, order_placed_before
from yummi_orders.service_layer.ids import parse_user_id
from yummi_orders.service_layer.orders import create_order


async def _stored_items(uow: UnitOfWork, user_id: uuid.UUID) -> list[BasketItem]:
    """The stored lines, read in a transaction that ends at once (no connection held over catalog calls)."""
    items = await repo.basket_items_of(uow.session, user_id)
    await uow.rollback()
    return items


async def _priced(uow: UnitOfWork, catalog: Catalog, user_id: uuid.UUID) -> PricedBasket:
    items = await _stored_items(uow, user_id)
    products = await catalog.batch_get_products([item.product_id for item in items]) if items else []
    return price_basket(items, products)


async def get_basket(*, uow: UnitOfWork, catalog: Catalog, user_id: str) -> PricedBasket:
    """The user's basket priced now, with changed prices and unavailable products flagged."""
    return await _priced(uow, catalog, parse_user_id(user_id))


async def set_basket_item(
    *, uow: UnitOfWork, catalog: Catalog, user_id: str, product_id: str, quantity: int
) -> PricedBasket:
    """Set a line's quantity (1..99), adding the product at its current price when it is new."""
    owner = parse_user_id(user_id)
    reference = product_id.strip()
    errors = check_product_id(product_id, field="product_id") + check_quantity(quantity, field="quantity")
    if errors:
        raise InvalidArgument("basket line is not valid", errors=errors)
    items = await _stored_items(uow, owner)
    products = await catalog.batch_get_products([reference])
    candidates = [p for p in products if p.matches(reference)]
    if not candidates:
        raise InvalidArgument(
            f"unknown product {reference}",
            errors=[{"field": "product_id", "message": f"unknown product {reference}"}],
        )
    retailer = items[0].retailer if items else normalise_retailer(candidates[0].retailer)
    chosen = next((p for p in candidates if normalise_retailer(p.retailer) == retailer), candidates[0])
    check_can_add(items, product=chosen)
    product, problem = resolve_product(reference, retailer=retailer, products=candidates)
    if product is None:
        raise InvalidArgument(
            problem or "product cannot be added", errors=[{"field": "product_id", "message": problem}]
        )
    current = await repo.basket_items_of(uow.session, owner, lock=True)
    check_can_add(current, product=product)  # again under the lock: the basket may have changed meanwhile
    await repo.upsert_basket_item(
        uow.session,
        user_id=owner,
        item=BasketItem(
            product_id=product.product_id,
            retailer=normalise_retailer(product.retailer),
            title=product.title,
            quantity=quantity,
            added_unit_price_minor=product.price_minor,
        ),
    )
    await uow.commit()
    return await _priced(uow, catalog, owner)


async def remove_basket_item(
    *, uow: UnitOfWork, catalog: Catalog, user_id: str, product_id: str
) -> PricedBasket:
    """Remove a line (by retailer product_id or product UUID); removing a line that is not there is fine."""
    owner = parse_user_id(user_id)
    errors = check_product_id(product_id, field="product_id")
    if errors:
        raise InvalidArgument("product_id is not valid", errors=errors)
    reference = product_id.strip()
    removed = await repo.delete_basket_items(uow.session, user_id=owner, product_ids=[reference])
    await uow.commit()
    if not removed:
        # Perhaps the product's UUID: ask the catalog which retailer product_id it is.
        named = [p.product_id for p in await catalog.batch_get_products([reference]) if p.matches(reference)]
        if named:
            await repo.delete_basket_items(uow.session, user_id=owner, product_ids=named)
            await uow.commit()
    return await _priced(uow, catalog, owner)


async def clear_basket(*, uow: UnitOfWork, user_id: str) -> PricedBasket:
    """Empty the user's basket."""
    owner = parse_user_id(user_id)
    await repo.delete_basket_items(uow.session, user_id=owner)
    await uow.commit()
    return PricedBasket(lines=[], total_minor=0)


async def checkout_basket(
    *, uow: UnitOfWork, catalog: Catalog, user_id: str, notes: str = "", idempotency_key: str = ""
) -> Order:
    """Turn the basket into an order (same rules as placing one) and empty it in the same transaction.

    With an `idempotency_key` the user already checked out (or placed an order) with, that order is answered
    as it is now and neither an order nor the basket is touched (InvalidArgument when the request differs).
    """
    owner = parse_user_id(user_id)
    errors = check_notes(notes)
    if errors:
        raise InvalidArgument("checkout is not valid", errors=errors)
    keyed = idempotency_key_of(idempotency_key, request={"op": "checkout", "notes": notes.strip()})
    items = await _stored_items(uow, owner)
    try:
        if not items:
            raise InvalidArgument(
                "the basket is empty", errors=[{"field": "items", "message": "the basket is empty"}]
            )
        products = await catalog.batch_get_products([item.product_id for item in items])
        lines = price_lines(
            retailer=items[0].retailer,
            lines=[LineRequest(item.product_id, item.quantity, index) for index, item in enumerate(items)],
            products=products,
        )
    except YummiError:
        # A retry after the checkout went through finds the basket emptied: it gets the order placed then.
        if keyed is not None and (existing := await keyed_order(uow, owner, keyed)) is not None:
            return existing
        raise
    current = await repo.basket_items_of(uow.session, owner, lock=True)
    if [(i.product_id, i.quantity) for i in current] != [(i.product_id, i.quantity) for i in items]:
        # A concurrent checkout with the same key emptied it first: answer that order.
        if keyed is not None and (existing := await keyed_order(uow, owner, keyed)) is not None:
            return existing
        raise Conflict("the basket changed during checkout; try again")
    order = await create_order(
        uow=uow, user_id=owner, retailer=items[0].retailer, lines=lines, notes=notes.strip(), keyed=keyed
    )
    if order is None:  # only a keyed insert can conflict
        return await order_placed_before(uow, owner, keyed)  # the basket stays as it is
    await repo.delete_basket_items(uow.session, user_id=owner)
    await uow.commit()
    return order
