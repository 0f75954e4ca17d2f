"""scripts/generate_sample_catalog.py: deterministic, unique ids, exact prices, both output formats."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "generate_sample_catalog.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sample_catalog", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> Iterator[ModuleType]:
    module = _load_script()
    yield module
    sys.modules.pop("generate_sample_catalog", None)


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, check=True, timeout=120
    )


def _load(path: Path) -> Any:
    # parse_float=Decimal: check prices as written, never through a binary float
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


@pytest.fixture(scope="module")
def catalog_20k(gen: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("catalog") / "catalog.json"
    gen.generate_file(str(out), 20_000, seed=42, fmt="object")
    data = _load(out)
    assert isinstance(data, dict)
    return data


def test_same_seed_gives_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    _run("--count", "1500", "--seed", "7", "--out", str(a))
    _run("--count", "1500", "--seed", "7", "--out", str(b))
    _run("--count", "1500", "--seed", "8", "--out", str(c))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_default_seed_is_42(tmp_path: Path) -> None:
    default, explicit = tmp_path / "default.json", tmp_path / "explicit.json"
    _run("--count", "300", "--out", str(default))
    _run("--count", "300", "--seed", "42", "--out", str(explicit))
    assert default.read_bytes() == explicit.read_bytes()


def test_object_format_has_metadata_and_items(catalog_20k: dict[str, Any]) -> None:
    assert catalog_20k["source"] == "woolworths-scraper"
    assert catalog_20k["scraped_at"].endswith("Z")
    assert catalog_20k["item_count"] == 20_000
    assert len(catalog_20k["items"]) == 20_000


def test_product_ids_are_unique_and_woolworths_like(catalog_20k: dict[str, Any], gen: ModuleType) -> None:
    items = catalog_20k["items"]
    ids = [item["product_id"] for item in items]
    assert len(set(ids)) == len(ids)
    for pid in ids:
        assert isinstance(pid, str) and pid.isdigit()
        if len(pid) == 13:
            assert pid.startswith("600")
            assert int(pid[-1]) == gen.ean13_check_digit(pid[:12])
        else:
            assert len(pid) == 8 and pid.startswith("2")
    assert any(len(pid) == 13 for pid in ids) and any(len(pid) == 8 for pid in ids)
    barcodes = [item["barcode"] for item in items if "barcode" in item]
    assert len(set(barcodes)) == len(barcodes)


def test_every_item_has_id_title_and_a_positive_price_exact_in_cents(catalog_20k: dict[str, Any]) -> None:
    kinds = set()
    for index, item in enumerate(catalog_20k["items"]):
        assert item["product_id"], index
        assert isinstance(item["title"], str) and item["title"].strip() == item["title"] and item["title"], (
            index
        )
        assert "  " not in item["title"], index
        price = item["price"]
        assert not isinstance(price, bool), index
        assert isinstance(price, int | Decimal | str), index
        kinds.add(type(price))
        amount = Decimal(price) if isinstance(price, str) else Decimal(price)
        assert amount > 0, index
        cents = amount * 100
        assert cents == cents.to_integral_value(), (index, price)
    assert str in kinds and Decimal in kinds  # both plain numbers and numeric strings occur


def test_string_prices_are_plain_decimals(catalog_20k: dict[str, Any]) -> None:
    strings = [item["price"] for item in catalog_20k["items"] if isinstance(item["price"], str)]
    assert strings
    for price in strings:
        whole, dot, frac = price.partition(".")
        assert whole.isdigit() and dot == "." and len(frac) == 2 and frac.isdigit(), price


def test_about_eight_percent_unavailable(catalog_20k: dict[str, Any]) -> None:
    items = catalog_20k["items"]
    unavailable = sum(1 for item in items if item.get("available") is False)
    assert 0.05 <= unavailable / len(items) <= 0.12


def test_items_look_like_scraper_output(catalog_20k: dict[str, Any], gen: ModuleType) -> None:
    items = catalog_20k["items"]
    categories = {item["category"] for item in items if "category" in item}
    assert {"Fruit & Veg", "Meat Poultry & Fish", "Dairy Eggs & Milk", "Pantry", "Beverages"} <= categories
    assert catalog_20k["retailer"] == "woolworths"  # named once, in the header
    assert all("retailer" not in item for item in items)
    assert all(item.get("available", False) is False for item in items)  # only out-of-stock is marked
    for item in items:
        if "url" in item:
            assert item["url"].startswith("https://www.woolworths.co.za/prod/")
            assert item["url"].endswith(f"/A-{item['product_id']}")
        if "image_url" in item:
            assert item["image_url"].startswith("https://")
        if item.get("promo"):
            assert item["promo"]["type"] in {"multibuy", "wrewards", "price_cut"}
    # optional fields are sometimes missing, extras sometimes present
    assert any("image_url" not in item for item in items)
    assert any("catalog_ref_id" not in item for item in items)
    with_ref = [item for item in items if "catalog_ref_id" in item]
    assert with_ref and all(item["catalog_ref_id"] != item["product_id"] for item in with_ref)
    codes = {item["catalog_ref_id"] for item in with_ref} | {item["product_id"] for item in items}
    assert len(codes) == len(with_ref) + len(items)  # references are codes of their own
    assert any(isinstance(item.get("nutrition"), dict) for item in items)
    assert any(item.get("allergens") for item in items)
    assert any("promo" in item and item["promo"] is None for item in items)
    assert any(any(ord(ch) > 127 for ch in item["title"]) for item in items)
    # titles come from a large vocabulary: few repeats
    titles = [item["title"] for item in items]
    assert len(set(titles)) / len(titles) > 0.9


def test_items_are_compact_about_300_bytes_each(gen: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "catalog.json"
    size = gen.generate_file(str(out), 5_000, seed=42)
    assert 280 <= size / 5_000 <= 340  # 100,000 items make about 31 MB
    items = _load(out)["items"]
    with_image = [item for item in items if "image_url" in item]
    assert all(item["image_url"].endswith(f"/{item['product_id']}.jpg") for item in with_image)
    assert all(item.get("barcode") != item["product_id"] for item in items)  # an EAN id is the barcode


def test_list_format_is_a_bare_array(tmp_path: Path) -> None:
    out = tmp_path / "list.json"
    _run("--count", "50", "--format", "list", "--out", str(out))
    data = _load(out)
    assert isinstance(data, list) and len(data) == 50
    assert all({"product_id", "title", "price"} <= item.keys() for item in data)


def test_object_and_list_formats_hold_the_same_items(tmp_path: Path) -> None:
    obj, lst = tmp_path / "obj.json", tmp_path / "lst.json"
    _run("--count", "200", "--seed", "3", "--out", str(obj))
    _run("--count", "200", "--seed", "3", "--format", "list", "--out", str(lst))
    assert _load(obj)["items"] == _load(lst)


def test_stdout_and_zero_items(tmp_path: Path) -> None:
    result = _run("--count", "5", "--format", "list", "--out", "-")
    assert len(json.loads(result.stdout.decode("utf-8"))) == 5
    empty = tmp_path / "empty.json"
    _run("--count", "0", "--out", str(empty))
    assert _load(empty)["items"] == []


def test_rejects_a_negative_count() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "-1", "--out", "-"], capture_output=True, timeout=60
    )
    assert result.returncode == 2


def test_vocabulary_sizes_and_units_are_consistent(gen: ModuleType) -> None:
    assert gen.parse_size("6 x 330 ml") == (1980, "ml")
    assert gen.parse_size("1.5 kg") == (1500, "g")
    assert gen.parse_size("18 pk") == (18, "each")
    assert gen.parse_size("each") == (1, "each")
    for family in gen.FAMILIES:
        assert family.category in gen.CATEGORY_WEIGHTS
        assert family.nutrition is None or family.nutrition in gen.NUTRITION_PROFILES
        specs = gen.name_specs(family)
        assert specs, family.aisle
        for spec in specs:
            assert spec.name and not any(mark in spec.name for mark in "|@~"), spec.name
            assert spec.brands and spec.sizes and spec.ref_price > 0, spec.name
            for size in spec.sizes:
                assert size in ("each", "S", "M", "L", "XL") or gen._SIZE_RE.match(size), (spec.name, size)
                assert spec.ref_qty[gen.parse_size(size)[1]] > 0
    assert len(gen.family_combos(gen.FAMILIES[0])) == gen._FamilyDeck(gen.FAMILIES[0]).total
