"""The dataset lifecycle: its statuses, which can be served or activated, and how versions are named."""

from __future__ import annotations

import re
from enum import StrEnum

from yummi_common.errors import Conflict, InvalidArgument

MAX_NAME = 200
MAX_NOTES = 2_000
MAX_SOURCE = 500
MAX_CREATED_BY = 128
MAX_VERSION = 64
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")


class DatasetStatus(StrEnum):
    """uploading → indexing → ready → active → retired; indexing → failed.

    `ready` was indexed but never live; `retired` was live and was replaced. Both can be activated (a rollback
    when retired); retention deletes the oldest of them, and old failed ones.
    """

    UPLOADING = "uploading"
    INDEXING = "indexing"
    READY = "ready"
    FAILED = "failed"
    ACTIVE = "active"
    RETIRED = "retired"


# Versions whose products are fully loaded: they can be listed, looked up and made live.
SERVABLE = frozenset({DatasetStatus.READY, DatasetStatus.ACTIVE, DatasetStatus.RETIRED})


def ensure_activatable(status: str) -> None:
    """Refuse to make live a version whose products are not (or never will be) fully loaded."""
    if status not in SERVABLE:
        raise Conflict(f"a dataset that is {status} cannot be activated; only ready or retired ones can")


def generated_version(sequence: int) -> str:
    """The version name given to an import that did not name one: v0001, v0002, ..."""
    return f"v{sequence:04d}"


def check_version(version: str) -> str:
    """A caller-chosen version name: 1..64 characters of letters, digits and . _ -."""
    version = version.strip()
    if len(version) > MAX_VERSION or not _VERSION.fullmatch(version):
        raise InvalidArgument(
            "version is not valid",
            errors=[
                {"field": "version", "message": f"1..{MAX_VERSION} characters of letters, digits and . _ -"}
            ],
        )
    return version


def check_text(value: str, *, field: str, limit: int) -> str:
    """A free-text dataset field, trimmed and bounded."""
    value = value.strip()
    if len(value) > limit or "\x00" in value:
        raise InvalidArgument(
            f"{field} is not valid",
            errors=[{"field": field, "message": f"at most {limit} characters, no NUL"}],
        )
    return value
