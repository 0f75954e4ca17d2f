"""Small catalogs for the integration tests: every import is new unless the same nonce is reused."""

from __future__ import annotations

import uuid

import orjson

FRUIT = [
    ("1001", "Bananas Loose 1 kg", 24.99, "Fruit & Veg", True),
    ("1002", "Organic Banana Bunch", "32.50", "Fruit & Veg", True),
    ("1003", "Granny Smith Apples 1.5 kg", 44.99, "Fruit & Veg", True),
    ("1004", "Avocados Ready to Eat 4 pack", 54.99, "Fruit & Veg", False),
    ("2001", "Full Cream Fresh Milk 2 l", 36.99, "Dairy", True),
    ("2002", "Double Cream Yoghurt 1 kg", 59.99, "Dairy", True),
    ("2003", "Mature Cheddar Cheese 400 g", 89.99, "Dairy", False),
    ("3001", "Woolworths Rooibos Tea 80s", 42.99, "Beverages", True),
    ("3002", "Banana & Strawberry Smoothie 750 ml", 34.99, "Beverages", True),
    ("4001", "Free Range Large Eggs 18 pack", 79.99, "Dairy Eggs & Milk", True),
]


def catalog_items(count: int = 40, *, nonce: str | None = None) -> list[dict[str, object]]:
    """The fruit above plus filler pantry items; one item from another retailer."""
    items: list[dict[str, object]] = []
    for product_id, title, price, category, available in FRUIT:
        items.append(
            {
                "product_id": product_id,
                "catalog_ref_id": product_id,
                "retailer": "woolworths",
                "title": title,
                "price": price,
                "currency": "ZAR",
                "url": f"https://www.woolworths.co.za/prod/_/A-{product_id}",
                "image_url": f"https://assets.woolworthsstatic.co.za/{product_id}.jpg",
                "category": category,
                "available": available,
                "brand": "Woolworths",
                "nutrition": {"per": "100 g", "fat_g": {"total": 1.5}},
            }
        )
    for n in range(count - len(FRUIT) - 1):
        items.append(
            {
                "product_id": f"9{n:04d}",
                "title": f"Pantry Staple No. {n}",
                "price": 10 + n,
                "category": "Pantry",
            }
        )
    items.append({"product_id": "1001", "retailer": "checkers", "title": "Bananas Per kg", "price": 19.99})
    if nonce is not None:
        items[-1]["nonce"] = nonce
    return items


def catalog_bytes(count: int = 40, *, nonce: str | None = None, wrap: bool = True) -> bytes:
    items = catalog_items(count, nonce=nonce or uuid.uuid4().hex)
    return orjson.dumps({"source": "tests", "items": items} if wrap else items)
