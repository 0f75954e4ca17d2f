"""PayFast signatures: PayFast's published examples, field order, encoding, sensitivity to every input."""

from __future__ import annotations

import base64
import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

from yummi_payments.domain import payfast

# From PayFast's PHP SDK tests (tests/PaymentIntegrations/NotificationTest.php): a real ITN, signed without a
# passphrase over every posted field in posted order, empty ones included.
PUBLISHED_ITN = [
    ("m_payment_id", "000000020"),
    ("pf_payment_id", "1579137"),
    ("payment_status", "COMPLETE"),
    ("item_name", "Order #000000020"),
    ("item_description", ""),
    ("amount_gross", "15.00"),
    ("amount_fee", "-2.30"),
    ("amount_net", "12.70"),
    ("custom_str1", ""),
    ("custom_str2", ""),
    ("custom_str3", ""),
    ("custom_str4", ""),
    ("custom_str5", ""),
    ("custom_int1", ""),
    ("custom_int2", ""),
    ("custom_int3", ""),
    ("custom_int4", ""),
    ("custom_int5", ""),
    ("name_first", "Tom"),
    ("name_last", "Tom"),
    ("email_address", "lindley+user1@appinlet.com"),
    ("merchant_id", "10027938"),
]
PUBLISHED_ITN_SIGNATURE = "4078bca2c8987e0e0c4e7230f2f46323"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


# From PayFast's PHP SDK tests (tests/unit/AuthTest.php): checkout fields given in shuffled order, signed in
# the documented order with the passphrase "payfastsandbox".
PUBLISHED_CHECKOUT = {
    "merchant_id": "10028084",
    "merchant_key": "4hjoenwbwnuso",
    "subscription_type": "1",
    "m_payment_id": "5",
    "amount": "5.00",
    "recurring_amount": "5",
    "billing_date": "2023-01-01",
    "frequency": "3",
    "cycles": "0",
    "custom_str1": _b64("Some Test String"),
    "custom_int1": "1",
    "custom_int2": "1",
    "custom_str2": _b64("Another Test String"),
    "item_name": "Test",
    "name_last": "Test",
    "name_first": "Test",
    "email_address": "test@test.com",
    "confirmation_address": "test@test.test",
    "email_confirmation": "1",
    "return_url": "https://test.com/billing/success",
    "cancel_url": "https://test.com/billing/cancel",
    "notify_url": "https://test.com/payfast/webhook",
}
PUBLISHED_CHECKOUT_SIGNATURE = "3441682c5d8a65486f5b7cc8ce41d146"


def test_itn_signature_matches_payfasts_published_example():
    assert payfast.sign(PUBLISHED_ITN, None) == PUBLISHED_ITN_SIGNATURE


def test_checkout_signature_matches_payfasts_published_example_whatever_the_input_order():
    items = list(PUBLISHED_CHECKOUT.items())
    for seed in range(5):
        random.Random(seed).shuffle(items)
        signed = payfast.signed_checkout_fields(dict(items), "payfastsandbox")
        assert signed[-1] == ("signature", PUBLISHED_CHECKOUT_SIGNATURE)


def test_checkout_fields_come_in_documented_order_without_empty_values_and_signature_last():
    signed = payfast.signed_checkout_fields(
        {
            "item_name": "Top-up",
            "amount": "10.00",
            "m_payment_id": "abc",
            "email_address": "",
            "notify_url": "https://x.example/itn",
            "merchant_key": "k",
            "merchant_id": "1",
        },
        None,
    )
    assert [name for name, _ in signed] == [
        "merchant_id",
        "merchant_key",
        "notify_url",
        "m_payment_id",
        "amount",
        "item_name",
        "signature",
    ]


def test_values_are_stripped_before_signing():
    spaced = payfast.signed_checkout_fields({"merchant_id": " 1 ", "item_name": " Top-up "}, None)
    plain = payfast.signed_checkout_fields({"merchant_id": "1", "item_name": "Top-up"}, None)
    assert spaced == plain


def test_encoding_is_phps_urlencode_spaces_as_plus_and_upper_case_escapes():
    assert payfast.encode_value("a b/c:d~e") == "a+b%2Fc%3Ad%7Ee"
    assert payfast.param_string([("return_url", "https://x.co/r?a=1&b=2")]) == (
        "return_url=https%3A%2F%2Fx.co%2Fr%3Fa%3D1%26b%3D2"
    )


def test_passphrase_is_appended_url_encoded():
    pairs = [("merchant_id", "1"), ("amount", "5.00")]
    signed = b"merchant_id=1&amount=5.00&passphrase=my+secret+phrase"
    expected = hashlib.md5(signed, usedforsecurity=False).hexdigest()
    assert payfast.sign(pairs, "my secret phrase") == expected


def test_unknown_checkout_field_is_refused():
    try:
        payfast.checkout_pairs({"merchant_id": "1", "evil": "x"})
    except ValueError as exc:
        assert "evil" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("unknown field accepted")


_names = st.sampled_from(
    ["merchant_id", "amount", "item_name", "m_payment_id", "custom_str1", "email_address"]
)
_values = st.text(min_size=1, max_size=20).filter(lambda v: v.strip() == v and v != "")
_pairs = st.lists(st.tuples(_names, _values), min_size=2, max_size=6, unique_by=lambda kv: kv[0])
_passphrases = st.one_of(st.none(), st.text(min_size=1, max_size=12).filter(lambda p: p.strip() == p and p))


@given(pairs=_pairs, passphrase=_passphrases, index=st.integers(min_value=0), new_value=_values)
def test_changing_any_value_changes_the_signature(pairs, passphrase, index, new_value):
    i = index % len(pairs)
    if pairs[i][1] == new_value:
        return
    changed = [*pairs[:i], (pairs[i][0], new_value), *pairs[i + 1 :]]
    assert payfast.sign(changed, passphrase) != payfast.sign(pairs, passphrase)


@given(pairs=_pairs, passphrase=_passphrases)
def test_changing_the_field_order_changes_the_signature(pairs, passphrase):
    swapped = [pairs[1], pairs[0], *pairs[2:]]
    assert payfast.sign(swapped, passphrase) != payfast.sign(pairs, passphrase)


@given(pairs=_pairs, passphrase=_passphrases, other=_passphrases)
def test_changing_the_passphrase_changes_the_signature(pairs, passphrase, other):
    if passphrase == other:
        return
    assert payfast.sign(pairs, passphrase) != payfast.sign(pairs, other)


@given(
    pairs=_pairs,
    passphrase=_passphrases,
    name=st.sampled_from(["custom_int1", "name_first"]),
    value=_values,
)
def test_adding_a_field_changes_the_signature(pairs, passphrase, name, value):
    if any(k == name for k, _ in pairs):
        return
    assert payfast.sign([*pairs, (name, value)], passphrase) != payfast.sign(pairs, passphrase)
