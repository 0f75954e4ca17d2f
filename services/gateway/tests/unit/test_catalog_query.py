"""A catalog page's ETag names its query: the canonical form must not change between releases."""

from __future__ import annotations

import dataclasses

import orjson

from yummi_gateway.entrypoints.routes.catalog import CatalogQuery


def test_the_canonical_query_is_the_sorted_json_of_every_field() -> None:
    query = CatalogQuery("woolworths", 20, False, None, "pantry", True, "milk", "abc")
    assert query.canonical() == orjson.dumps(dataclasses.asdict(query), option=orjson.OPT_SORT_KEYS).decode()
    assert query.canonical() == (
        '{"available":true,"category":"pantry","cursor":"abc","dataset_version":null,"limit":20,"q":"milk",'
        '"random":false,"retailer":"woolworths"}'
    )
