"""The dataset lifecycle rules: which versions can go live and how versions are named."""

from __future__ import annotations

import pytest

from yummi_catalog.domain.datasets import (
    DatasetStatus,
    check_text,
    check_version,
    ensure_activatable,
    generated_version,
)
from yummi_common.errors import Conflict, InvalidArgument

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("status", [DatasetStatus.READY, DatasetStatus.RETIRED, DatasetStatus.ACTIVE])
def test_fully_loaded_versions_can_be_activated(status: DatasetStatus) -> None:
    ensure_activatable(status)


@pytest.mark.parametrize("status", [DatasetStatus.UPLOADING, DatasetStatus.INDEXING, DatasetStatus.FAILED])
def test_versions_without_all_their_products_cannot_be_activated(status: DatasetStatus) -> None:
    with pytest.raises(Conflict):
        ensure_activatable(status)


def test_generated_versions_are_zero_padded_and_sort_in_order() -> None:
    assert generated_version(7) == "v0007"
    assert sorted([generated_version(10), generated_version(9)]) == ["v0009", "v0010"]


@pytest.mark.parametrize("version", ["2025-03-31", "v1.2_rc-1", "x" * 64])
def test_reasonable_version_names_are_accepted(version: str) -> None:
    assert check_version(f" {version} ") == version


@pytest.mark.parametrize("version", ["", " ", "-leading-dash", "has space", "x" * 65, "a/b", "nul\x00"])
def test_odd_version_names_are_refused(version: str) -> None:
    with pytest.raises(InvalidArgument):
        check_version(version)


def test_free_text_is_trimmed_and_bounded() -> None:
    assert check_text("  weekly scrape ", field="name", limit=20) == "weekly scrape"
    with pytest.raises(InvalidArgument):
        check_text("x" * 21, field="name", limit=20)
    with pytest.raises(InvalidArgument):
        check_text("a\x00b", field="name", limit=20)
