"""Bearer parsing, unsigned dev tokens, claims and roles."""

from __future__ import annotations

import base64
import time

import orjson
import pytest

from yummi_gateway.domain.identity import (
    InvalidToken,
    MissingToken,
    bearer_token,
    identity_from_claims,
    parse_dev_token,
    roles_for,
    token_header,
)


def b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


def dev_token(claims: dict[str, object], header: dict[str, object] | None = None, signature: str = "") -> str:
    return f"{b64(header or {'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.{signature}"


NOW = 1_800_000_000


def test_missing_or_blank_authorization_is_a_missing_token() -> None:
    for value in (None, "", "   "):
        with pytest.raises(MissingToken):
            bearer_token(value)


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer    ", "token-without-scheme"])
def test_a_non_bearer_authorization_is_invalid(value: str) -> None:
    with pytest.raises(InvalidToken):
        bearer_token(value)


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc.def.") == "abc.def."


def test_dev_token_yields_its_claims() -> None:
    claims = parse_dev_token(dev_token({"sub": "user_1", "email": "A@Example.com", "exp": NOW + 60}), now=NOW)
    identity = identity_from_claims(claims)
    assert identity.clerk_user_id == "user_1"
    assert identity.email == "a@example.com"


def test_expired_dev_token_is_refused_after_the_leeway() -> None:
    token = dev_token({"sub": "user_1", "exp": NOW - 31})
    with pytest.raises(InvalidToken, match="expired"):
        parse_dev_token(token, now=NOW)
    assert parse_dev_token(dev_token({"sub": "user_1", "exp": NOW - 29}), now=NOW)["sub"] == "user_1"


def test_a_signed_header_is_not_a_dev_token() -> None:
    with pytest.raises(InvalidToken):
        parse_dev_token(dev_token({"sub": "u"}, header={"alg": "RS256"}), now=NOW)


def test_an_alg_none_token_with_a_signature_is_refused() -> None:
    with pytest.raises(InvalidToken):
        parse_dev_token(dev_token({"sub": "u"}, signature="c2ln"), now=NOW)


@pytest.mark.parametrize("token", ["abc", "a.b", "!!!.???.", f"{b64({'alg': 'none'})}.bm90LWpzb24."])
def test_garbage_tokens_are_invalid(token: str) -> None:
    with pytest.raises(InvalidToken):
        parse_dev_token(token, now=NOW)


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 42}, {"sub": "x" * 300}])
def test_a_token_needs_a_sane_subject(claims: dict[str, object]) -> None:
    with pytest.raises(InvalidToken):
        identity_from_claims(claims)


def test_a_non_numeric_exp_is_refused() -> None:
    with pytest.raises(InvalidToken):
        parse_dev_token(dev_token({"sub": "u", "exp": "tomorrow"}), now=NOW)


def test_token_header_reads_the_alg() -> None:
    assert token_header(dev_token({"sub": "u"}))["alg"] == "none"


def test_role_claims_come_from_metadata_role_or_role() -> None:
    assert identity_from_claims({"sub": "u", "metadata": {"role": "admin"}}).role_claims == {"admin"}
    assert identity_from_claims({"sub": "u", "role": ["Runner"]}).role_claims == {"runner"}


def test_roles_come_from_the_email_lists_or_the_claims() -> None:
    admins, runners = frozenset({"boss@example.com"}), frozenset({"bot@example.com"})
    assert roles_for(
        email="Boss@example.com", role_claims=frozenset(), admin_emails=admins, runner_emails=runners
    ) == {"admin"}
    assert roles_for(
        email="bot@example.com", role_claims=frozenset(), admin_emails=admins, runner_emails=runners
    ) == {"runner"}
    assert roles_for(
        email=None, role_claims=frozenset({"admin"}), admin_emails=admins, runner_emails=runners
    ) == {"admin"}
    assert not roles_for(
        email="someone@example.com", role_claims=frozenset(), admin_emails=admins, runner_emails=runners
    )


def test_realistic_clock_is_not_needed_for_parsing() -> None:
    # a token minted now parses with the real clock too
    assert parse_dev_token(dev_token({"sub": "u", "exp": time.time() + 60}), now=time.time())["sub"] == "u"
