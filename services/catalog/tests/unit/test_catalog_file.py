"""The catalog.json validator: what it accepts, how it normalises, and how it reports each bad item."""

from __future__ import annotations

import hashlib
import json
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yummi_catalog.domain.catalog_file import (
    MAX_ATTRIBUTE_DEPTH,
    MAX_ATTRIBUTE_KEYS,
    PRODUCT_ID_NAMESPACE,
    CatalogFileError,
    parse_catalog,
    product_uuid,
)

pytestmark = pytest.mark.unit


def doc(*items: object, wrap: bool = False) -> bytes:
    body: object = {"source": "test", "items": list(items)} if wrap else list(items)
    return json.dumps(body).encode()


def item(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"product_id": "1001", "title": "Bananas Loose 1 kg", "price": 24.99}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def only_reason(content: bytes) -> str:
    parsed = parse_catalog(content)
    assert len(parsed.problems) == 1, parsed.problems
    return parsed.problems[0].reason


def test_array_and_items_object_are_both_catalogs() -> None:
    for content in (doc(item()), doc(item(), wrap=True)):
        parsed = parse_catalog(content)
        assert [i.product_id for i in parsed.items] == ["1001"]
        assert parsed.total == 1 and parsed.problems == []


def test_defaults_fill_optional_fields_and_extra_keys_become_attributes() -> None:
    parsed = parse_catalog(doc(item(brand="Woolworths", nutrition={"fat_g": {"total": 9.7}}, promo=None)))
    only = parsed.items[0]
    assert only.retailer == "woolworths"
    assert only.available is True
    assert only.catalog_ref_id == only.url == only.image_url == only.category == ""
    assert orjson.loads(only.attributes_json) == {
        "brand": "Woolworths",
        "nutrition": {"fat_g": {"total": 9.7}},
        "promo": None,
    }


def test_standard_fields_are_normalised() -> None:
    parsed = parse_catalog(
        doc(
            item(
                product_id=6001195408316,
                retailer=" Woolworths ",
                title="  Full Cream Milk 2 l ",
                catalog_ref_id=42,
                url="//www.woolworths.co.za/prod/1",
                image_url=None,
                category="Dairy",
                available=False,
                currency="zar",
            )
        )
    )
    only = parsed.items[0]
    assert (only.product_id, only.retailer, only.title) == (
        "6001195408316",
        "woolworths",
        "Full Cream Milk 2 l",
    )
    assert only.catalog_ref_id == "42"
    assert only.url == "https://www.woolworths.co.za/prod/1"
    assert only.available is False
    assert "currency" not in orjson.loads(only.attributes_json)


@pytest.mark.parametrize(
    ("price", "minor"), [("34.99", 3499), (34.99, 3499), (0, 0), ("R 1 234.50", 123450), (19.995, 2000)]
)
def test_price_in_rand_becomes_exact_cents(price: object, minor: int) -> None:
    assert parse_catalog(doc(item(price=price))).items[0].price_minor == minor


def test_checksum_is_the_sha256_of_the_exact_bytes() -> None:
    content = doc(item())
    parsed = parse_catalog(content)
    assert parsed.checksum_sha256 == hashlib.sha256(content).hexdigest()
    assert parsed.size_bytes == len(content)


def test_unicode_titles_and_attributes_are_kept() -> None:
    parsed = parse_catalog(doc(item(title="Rooibos Tee – Crème 🍵", origin="Suid-Afrika ✓")))
    assert parsed.items[0].title == "Rooibos Tee – Crème 🍵"
    assert orjson.loads(parsed.items[0].attributes_json) == {"origin": "Suid-Afrika ✓"}


def test_a_leading_utf8_bom_is_tolerated() -> None:
    assert len(parse_catalog(b"\xef\xbb\xbf" + doc(item())).items) == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe[]", "not valid JSON"),
        (b"[NaN]", "not valid JSON"),
        (b'"a string"', "JSON array of items or an object"),
        (b"42", "JSON array of items or an object"),
        (b"null", "JSON array of items or an object"),
        (b'{"products": []}', '"items" list'),
        (b'{"items": {"a": 1}}', '"items" must be a list'),
        (b"[]", "no items"),
        (b'{"items": []}', "no items"),
    ],
)
def test_file_level_faults_are_refused_with_a_reason(content: bytes, reason: str) -> None:
    with pytest.raises(CatalogFileError) as caught:
        parse_catalog(content)
    assert reason in caught.value.reason


def test_too_many_items_is_refused() -> None:
    with pytest.raises(CatalogFileError, match="at most 2"):
        parse_catalog(doc(item(product_id="1"), item(product_id="2"), item(product_id="3")), max_items=2)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not an object", "must be a JSON object"),
        (item(product_id=...), "product_id is required"),
        (item(product_id=""), "product_id must not be empty"),
        (item(product_id="   "), "product_id must not be empty"),
        (item(product_id=True), "string or an integer"),
        (item(product_id=1.5), "string or an integer"),
        (item(product_id=-3), "must not be negative"),
        (item(product_id="x" * 65), "longer than 64"),
        (item(product_id="a/b"), "may only hold"),
        (item(title=...), "title is required"),
        (item(title=""), "title must not be empty"),
        (item(title=12), "title must be a string"),
        (item(title="t" * 501), "longer than 500"),
        (item(title="line\nbreak"), "control characters"),
        (item(price=...), "price is required"),
        (item(price=None), "price is required"),
        (item(price=-1), "must not be negative"),
        (item(price="-0.50"), "must not be negative"),
        (item(price="abc"), "not a number"),
        (item(price="NaN"), "finite"),
        (item(price="Infinity"), "finite"),
        (item(price=True), "must be a number"),
        (item(price=[1]), "must be a number"),
        (item(price="1e300"), "price"),
        (item(price=1e300), "price"),
        (item(retailer=5), "retailer must be a string"),
        (item(retailer="Pick n Pay"), "retailer must be"),
        (item(available="true"), "available must be true or false"),
        (item(available=1), "available must be true or false"),
        (item(currency="USD"), "currency must be ZAR"),
        (item(url="javascript:alert(1)"), "url must be an http(s) URL"),
        (item(image_url="ftp://x/y.png"), "image_url must be an http(s) URL"),
        (item(category=["a"]), "category must be a string"),
        (item(category="c" * 201), "longer than 200"),
        (item(notes="x" * 2001), "longer than 2000"),
        (item(notes="nul\x00byte"), "NUL"),
        (item(**{"bad\x00key": 1}), "NUL"),
        (item(**{"k" * 129: 1}), "longer than 128"),
        (item(big=list(range(257))), "more than 256 entries"),
        (item(blob=["x" * 1999] * 9), "KiB"),
    ],
)
def test_each_bad_item_is_reported_with_its_index_and_reason(bad: object, reason: str) -> None:
    parsed = parse_catalog(doc(item(product_id="ok-0"), bad))
    assert [i.product_id for i in parsed.items] == ["ok-0"]
    assert len(parsed.problems) == 1
    problem = parsed.problems[0]
    assert problem.index == 1
    assert reason in problem.reason


def test_a_ten_megabyte_string_is_refused_without_trouble() -> None:
    assert "longer than 2000" in only_reason(doc(item(description="x" * 10_000_000)))
    assert "longer than 500" in only_reason(doc(item(title="y" * 10_000_000)))


def test_deep_nesting_is_refused() -> None:
    nested: object = "leaf"
    for _ in range(MAX_ATTRIBUTE_DEPTH + 1):
        nested = {"n": nested}
    assert "nested deeper than 8" in only_reason(doc(item(deep=nested)))
    very_deep = b'[{"product_id":"1","title":"t","price":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}]"
    with pytest.raises(CatalogFileError, match="not valid JSON"):
        parse_catalog(very_deep)


def test_nesting_up_to_the_limit_is_kept() -> None:
    nested: object = "leaf"
    for _ in range(MAX_ATTRIBUTE_DEPTH):
        nested = {"n": nested}
    assert len(parse_catalog(doc(item(deep=nested))).items) == 1


def test_too_many_extra_fields_is_refused() -> None:
    extra = {f"field_{n}": n for n in range(MAX_ATTRIBUTE_KEYS + 1)}
    assert "at most 64 extra fields" in only_reason(doc(item(**extra)))


def test_a_duplicate_product_names_both_indexes() -> None:
    parsed = parse_catalog(doc(item(product_id="7"), item(product_id="8"), item(product_id=7)))
    assert [i.product_id for i in parsed.items] == ["7", "8"]
    problem = parsed.problems[0]
    assert (problem.index, problem.product_id) == (2, "7")
    assert "index 0" in problem.reason


def test_the_same_product_id_at_two_retailers_is_not_a_duplicate() -> None:
    parsed = parse_catalog(doc(item(product_id="7"), item(product_id="7", retailer="checkers")))
    assert len(parsed.items) == 2 and not parsed.problems


def test_problems_carry_the_raw_product_id_when_there_is_one() -> None:
    parsed = parse_catalog(doc(item(product_id="A1", price="free"), item(product_id=None, price="free")))
    assert [(p.index, p.product_id) for p in parsed.problems] == [(0, "A1"), (1, "")]
    error = parsed.problems[0].as_error()
    assert error["index"] == 0 and error["product_id"] == "A1" and error["reason"] == error["message"]
    assert error["field"] == "items[0]"


def test_a_product_id_is_the_same_uuid_in_every_version_and_differs_per_retailer() -> None:
    assert product_uuid("woolworths", "1001") == product_uuid("woolworths", "1001")
    assert product_uuid("woolworths", "1001") != product_uuid("checkers", "1001")
    assert product_uuid("woolworths", "1001").version == 5


@given(
    st.from_regex(r"[a-z0-9][a-z0-9._\-]{0,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True),
)
def test_a_product_uuid_is_exactly_the_standard_uuid5(retailer: str, product_id: str) -> None:
    expected = uuid.uuid5(PRODUCT_ID_NAMESPACE, f"{retailer}:{product_id}")
    got = product_uuid(retailer, product_id)
    assert got == expected and hash(got) == hash(expected) and str(got) == str(expected)
    assert (got.version, got.variant, got.bytes) == (5, uuid.RFC_4122, expected.bytes)


def test_short_extra_fields_are_checked_as_strictly_as_long_ones() -> None:
    assert "NUL" in only_reason(doc(item(n="\x00")))
    assert "NUL" in only_reason(doc(item(**{"\x00": 1})))
    kept = parse_catalog(doc(item(note="\\u0000 is not a NUL", tags=[[[]]])))
    assert orjson.loads(kept.items[0].attributes_json) == {"note": "\\u0000 is not a NUL", "tags": [[[]]]}
    flat: object = []
    for _ in range(MAX_ATTRIBUTE_DEPTH - 1):
        flat = [flat]
    assert len(parse_catalog(doc(item(x=flat))).items) == 1  # 8 levels, in 16 bytes
    assert "nested deeper than 8" in only_reason(doc(item(x=[flat])))


def test_items_keep_their_file_position() -> None:
    parsed = parse_catalog(doc(item(product_id="1"), "junk", item(product_id="3")))
    assert [i.index for i in parsed.items] == [0, 2]


# Generated valid items: any price with at most two decimals, as a JSON number or a string.
cents = st.integers(min_value=0, max_value=10**11)
price_forms = st.sampled_from(["number", "string", "integer_rand"])
product_ids = st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True).filter(lambda s: s.strip() == s)
titles = st.text(
    alphabet=st.characters(codec="utf-8", min_codepoint=32, max_codepoint=0x2FFFF),
    min_size=1,
    max_size=500,
).filter(lambda s: s.strip() != "" and "\x7f" not in s)


def _rand(value: int, form: str) -> object:
    text = f"{value // 100}.{value % 100:02d}"
    if form == "string":
        return text
    if form == "integer_rand":
        return value // 100
    return float(text)


@settings(max_examples=200, deadline=None)
@given(value=cents, form=price_forms, product_id=product_ids, title=titles)
def test_any_valid_item_round_trips_its_price_to_exact_cents(
    value: int, form: str, product_id: str, title: str
) -> None:
    price = _rand(value, form)
    parsed = parse_catalog(orjson.dumps([{"product_id": product_id, "title": title, "price": price}]))
    assert parsed.problems == []
    expected = (value // 100) * 100 if form == "integer_rand" else value
    assert parsed.items[0].price_minor == expected
    assert parsed.items[0].title == title.strip()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
item_like = st.fixed_dictionaries(
    {},
    optional={
        "product_id": json_values | st.text(max_size=70) | st.integers(),
        "title": json_values | st.text(max_size=600),
        "price": json_values | st.decimals(allow_nan=True).map(str) | st.floats(),
        "retailer": json_values,
        "available": json_values,
        "url": json_values,
        "currency": json_values,
        "extra": json_values,
    },
)


@settings(max_examples=120, deadline=None)
@given(
    document=json_values
    | st.lists(item_like | json_values, max_size=5)
    | st.builds(lambda xs: {"items": xs}, st.lists(item_like, max_size=5))
)
def test_any_json_document_gives_items_problems_or_a_catalog_file_error(document: object) -> None:
    try:
        content = orjson.dumps(document)
    except (TypeError, orjson.JSONEncodeError):
        return
    try:
        parsed = parse_catalog(content)
    except CatalogFileError:
        return
    assert len(parsed.items) + len(parsed.problems) == parsed.total
    for valid in parsed.items:
        assert valid.price_minor >= 0
        assert isinstance(orjson.loads(valid.attributes_json), dict)


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=200))
def test_any_bytes_give_a_result_or_a_catalog_file_error(content: bytes) -> None:
    try:
        parse_catalog(content)
    except CatalogFileError:
        pass
