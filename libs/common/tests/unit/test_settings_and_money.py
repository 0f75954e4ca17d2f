"""Settings strictness, URL normalisation and money parsing."""

from __future__ import annotations

import base64
import os
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from yummi_common.errors import InvalidArgument
from yummi_common.money import format_minor, rand_to_minor
from yummi_common.pagination import decode_cursor, encode_cursor
from yummi_common.settings import Settings, normalise_database_url

PROD_OK = {
    "ENVIRONMENT": "prod",
    "REDIS_URL": "redis://r:6379/0",
    "NATS_URL": "nats://n:4222",
    "OPENAI_API_KEY": "sk-test",
    "PAYFAST_MERCHANT_ID": "1",
    "PAYFAST_MERCHANT_KEY": "k",
    "PAYFAST_NOTIFY_URL": "https://x/itn",
    "PAYFAST_RETURN_URL": "https://x/r",
    "PAYFAST_CANCEL_URL": "https://x/c",
    "CLERK_ISSUER": "https://clerk.example",
    "SECRETS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in PROD_OK or name in ("AUTH_DISABLE_VERIFICATION", "KMS_KEY_ID"):
            monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("postgres://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_database_urls_are_normalised_to_asyncpg(given_url: str, expected: str) -> None:
    assert normalise_database_url(given_url) == expected
    assert Settings(_env_file=None, DATABASE_URL=given_url).database_url == expected


def test_per_service_database_url_overrides_the_shared_one() -> None:
    s = Settings(_env_file=None, DATABASE_URL="postgres://h/shared", CATALOG_DATABASE_URL="postgres://h/cat")
    assert s.database_url_for("catalog") == "postgresql+asyncpg://h/cat"
    assert s.database_url_for("orders") == "postgresql+asyncpg://h/shared"


def test_prod_with_everything_set_starts() -> None:
    assert Settings(_env_file=None, **PROD_OK).environment == "prod"


@pytest.mark.parametrize("missing", sorted(k for k in PROD_OK if k != "ENVIRONMENT"))
def test_prod_refuses_to_start_without_a_required_setting(missing: str) -> None:
    values = {k: v for k, v in PROD_OK.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        Settings(_env_file=None, **values)


def test_prod_refuses_disabled_auth_verification() -> None:
    with pytest.raises(ValidationError, match="AUTH_DISABLE_VERIFICATION"):
        Settings(_env_file=None, AUTH_DISABLE_VERIFICATION="true", **PROD_OK)


def test_prod_refuses_a_weak_master_key() -> None:
    values = {**PROD_OK, "SECRETS_MASTER_KEY": base64.b64encode(b"\0" * 32).decode()}
    with pytest.raises(ValidationError, match="SECRETS_MASTER_KEY"):
        Settings(_env_file=None, **values)


def test_dev_auth_is_only_allowed_in_dev_and_test() -> None:
    assert Settings(_env_file=None, ENVIRONMENT="dev", AUTH_DISABLE_VERIFICATION="true").dev_auth_allowed
    assert Settings(_env_file=None, ENVIRONMENT="test", AUTH_DISABLE_VERIFICATION="true").dev_auth_allowed
    assert not Settings(_env_file=None, ENVIRONMENT="dev").dev_auth_allowed


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        (34.99, 3499),
        ("34.99", 3499),
        ("R 12.50", 1250),
        (0, 0),
        (19.999, 2000),
        ("1e2", 10000),
        (0.1 + 0.2, 30),
    ],
)
def test_rand_amounts_become_exact_cents(value: object, cents: int) -> None:
    assert rand_to_minor(value) == cents


@pytest.mark.parametrize(
    "value", [-1, "-0.01", "abc", "", None, True, float("nan"), float("inf"), [], "1" * 40]
)
def test_bad_rand_amounts_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        rand_to_minor(value)


@given(st.integers(min_value=0, max_value=10**11))
def test_cents_round_trip_through_the_rand_string(cents: int) -> None:
    assert rand_to_minor(format_minor(cents)) == cents
    assert Decimal(format_minor(cents)) * 100 == cents


def test_cursors_round_trip_and_tampering_is_an_invalid_argument() -> None:
    assert decode_cursor(encode_cursor(["2026-01-01", "abc"]), arity=2) == ["2026-01-01", "abc"]
    for bad in ["!!!", encode_cursor(["only-one"]), "x" * 600, encode_cursor({"a": 1})]:  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            decode_cursor(bad, arity=2)
