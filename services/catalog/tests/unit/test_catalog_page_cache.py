"""The page cache: least recently used pages go first, and a hit refreshes a page."""

from __future__ import annotations

import pytest

from yummi_catalog.service_layer.products import NO_DATASET, PageCache, ProductPage

pytestmark = pytest.mark.unit


def page(cursor: str) -> ProductPage:
    return ProductPage(rows=[], next_cursor=cursor, dataset=NO_DATASET)


def test_the_least_recently_used_page_is_evicted_first() -> None:
    cache = PageCache(max_pages=2)
    a, b, c = page("a"), page("b"), page("c")
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # "a" is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None
    assert cache.get("a") is a and cache.get("c") is c
