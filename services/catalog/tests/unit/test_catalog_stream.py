"""The streaming catalog reader: the in-memory parser's verdicts, in batches, with bounded memory."""

from __future__ import annotations

import hashlib
import io
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yummi_catalog.domain.catalog_file import (
    MAX_JSON_DEPTH,
    CatalogFileError,
    CatalogItem,
    CatalogStream,
    parse_catalog,
)

pytestmark = pytest.mark.unit


class Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read, so every boundary case gets cut somewhere."""

    def __init__(self, content: bytes, step: int) -> None:
        self._content = content
        self._offset = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        chunk = self._content[self._offset : self._offset + size]
        self._offset += len(chunk)
        return chunk


def stream(
    content: bytes, *, step: int = 1 << 20, batch: int = 3, **limits: int
) -> tuple[list[CatalogItem], CatalogStream]:
    catalog = CatalogStream(Trickle(content, step), max_bytes=limits.pop("max_bytes", 1 << 30), **limits)
    items = [item for chunk in catalog.batches(batch) for item in chunk]
    return items, catalog


def item(product_id: str, **extra: object) -> dict[str, object]:
    return {"product_id": product_id, "title": f"Item {product_id}", "price": 9.99, **extra}


def test_items_come_in_batches_in_file_order_with_the_checksum_of_every_byte() -> None:
    content = (
        b"\xef\xbb\xbf"
        + json.dumps({"source": "t", "items": [item(str(n)) for n in range(7)], "end": 1}).encode()
    )
    catalog = CatalogStream(io.BytesIO(content), max_bytes=1 << 20)
    batches = list(catalog.batches(3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [i.product_id for b in batches for i in b] == [str(n) for n in range(7)]
    assert catalog.checksum_sha256 == hashlib.sha256(content).hexdigest()
    assert catalog.size_bytes == len(content)


@pytest.mark.parametrize("step", [1, 2, 7, 4096])
def test_strings_escapes_and_brackets_cut_at_any_point_read_the_same(step: int) -> None:
    tricky = [
        item("a", note='quote \\" and [[[{{{ inside', path="C:\\\\dir\\\\"),
        item("b", title="ends with a backslash \\\\", nested={"x": [[1], {"y": "]]]}}}"}]}),
        item("c", title="unicode ☕ \\u00e9 and \\ud83c\\udf75"),
    ]
    content = json.dumps(tricky).encode()
    streamed, catalog = stream(content, step=step)
    assert streamed == parse_catalog(content).items
    assert catalog.checker.problems == []


def test_bad_items_are_all_counted_but_nothing_is_yielded_after_the_first() -> None:
    content = json.dumps(
        [item("1"), item("2"), {"title": "no id", "price": 1}, item("4"), item("1")]
    ).encode()
    streamed, catalog = stream(content, batch=1)
    assert [i.product_id for i in streamed] == ["1", "2"]
    assert [(p.index, p.reason.split(" (")[0]) for p in catalog.checker.problems] == [
        (2, "product_id is required"),
        (4, "duplicate of the item at index 0"),
    ]
    assert catalog.checker.total == 5


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b" \n ", "empty"),
        (b"42", "JSON array of items or an object"),
        (b'"text"', "JSON array of items or an object"),
        (b"\xff\xfe[]", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"[NaN]", "not valid JSON"),
        (b'[{"product_id": "1", "title": "t", "price": 1}] trailing', "not valid JSON"),
        (b"[]", "no items"),
        (b'{"items": []}', "no items"),
        (b'{"products": [{"product_id": "1"}]}', '"items" list'),
        (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", f"more than {MAX_JSON_DEPTH} levels"),
        (b'["' + b"]" * 500 + b'", ' + b"[" * 200 + b"]" * 200 + b"]", f"more than {MAX_JSON_DEPTH} levels"),
        (json.dumps([item("1", blob="x" * 3_000_000)]).encode(), "larger than 1024 KiB"),
    ],
)
def test_file_level_faults_are_refused_with_a_reason(content: bytes, reason: str) -> None:
    with pytest.raises(CatalogFileError) as caught:
        stream(content, step=65536)
    assert reason in caught.value.reason


def test_the_item_and_byte_limits_hold() -> None:
    content = json.dumps([item(str(n)) for n in range(5)]).encode()
    with pytest.raises(CatalogFileError, match="more than 3 items"):
        stream(content, max_items=3)
    with pytest.raises(CatalogFileError, match="larger than 100 bytes"):
        stream(content, max_bytes=100)


item_like = st.fixed_dictionaries(
    {"product_id": st.from_regex(r"[A-Za-z0-9]{1,6}", fullmatch=True)},
    optional={
        "title": st.text(max_size=30),
        "price": st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=False), st.text(max_size=8)),
        "available": st.one_of(st.booleans(), st.none(), st.integers(-10, 10)),
        "tags": st.lists(st.text(alphabet='ab"\\[]{}', max_size=6), max_size=4),
        "deep": st.recursive(
            st.none() | st.text(max_size=4), lambda c: st.lists(c, max_size=2), max_leaves=12
        ),
    },
)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(item_like, min_size=1, max_size=8), wrap=st.booleans(), step=st.integers(1, 64))
def test_streaming_agrees_with_the_in_memory_parser(
    items: list[dict[str, object]], wrap: bool, step: int
) -> None:
    content = orjson.dumps({"items": items} if wrap else items)
    expected = parse_catalog(content)
    streamed, catalog = stream(content, step=step, batch=2)
    assert [p.index for p in catalog.checker.problems] == [p.index for p in expected.problems]
    if not expected.problems:
        assert streamed == expected.items
    assert catalog.checksum_sha256 == expected.checksum_sha256
