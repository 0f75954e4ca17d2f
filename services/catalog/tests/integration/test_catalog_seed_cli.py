"""`yummi-catalog seed`: loads a catalog.json as the live version, or leaves a live one alone when asked."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from yummi_catalog.entrypoints.cli import seed_command
from yummi_common.settings import Settings

from .catalog_factories import catalog_bytes, catalog_items

pytestmark = pytest.mark.integration


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def settings(settings: Settings, store_dir: Path) -> Settings:
    """The session settings with the dataset file store in this test's own folder."""
    return settings.model_copy(update={"catalog_store_dir": str(store_dir)})


def test_seed_imports_a_file_and_keeps_it_in_the_store(
    settings: Settings, tmp_path: Path, store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.json"
    path.write_bytes(catalog_bytes(count=15))
    assert seed_command(settings, [str(path)]) == 0
    assert "imported 15 items" in capsys.readouterr().out
    assert len(list(store_dir.glob("datasets/*/catalog.json"))) == 1

    assert seed_command(settings, [str(path)]) == 0
    assert "imported before" in capsys.readouterr().out
    assert seed_command(settings, ["--if-empty", str(path)]) == 0
    assert "already live; nothing to do" in capsys.readouterr().out


def test_seed_skips_invalid_items_and_says_so(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = catalog_items(count=12, nonce="seed-skip")
    items[2]["price"] = "n/a"
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(items))
    assert seed_command(settings, [str(path)]) == 0
    out = capsys.readouterr().out
    assert "imported 11 items" in out and "skipped 1 invalid items" in out


def test_seed_reports_a_missing_or_unusable_file(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert seed_command(settings, [str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert seed_command(settings, [str(broken)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
