"""The page cache: least recently used pages go first, and a hit refreshes a page."""

from __future__ import annotations

import pytest

from yummi_catalog.service_layer.products import NO_DATASET, PageCache, ProductPage

pytestmark = pytest.mark.unit


def page(cursor: str) -> ProductPage:
    return ProductPage(rows=[], next_cursor=cursor, dataset=NO_DATASET)


def test_the_least_recently_used_page_is_evicted_first() -> None:
    cache = PageCache(max_pages=2)
    cache.put("a", page("a"))
    cache.put("b", page("b"))
    assert cache.get("a") == page("a")  # "a" is now the most recent
    cache.put("c", page("c"))
    assert cache.get("b") is None
    assert cache.get("a") == page("a") and cache.get("c") == page("c")
