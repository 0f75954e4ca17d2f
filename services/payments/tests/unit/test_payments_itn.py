"""Parsing an ITN and the checks that need no network."""

from __future__ import annotations

import ipaddress
import uuid
from urllib.parse import urlencode

import pytest

from yummi_common.errors import Unavailable
from yummi_payments.adapters.payfast_client import SourceHosts, parse_client_ip
from yummi_payments.domain import payfast
from yummi_payments.domain.payfast import ItnError, PayfastStatus

PASSPHRASE = "jt7NOE43FZPn"


def itn_body(
    *, reference: uuid.UUID | None = None, passphrase: str | None = PASSPHRASE, **overrides: str
) -> bytes:
    pairs = [
        ("m_payment_id", str(reference or uuid.uuid4())),
        ("pf_payment_id", "1089250"),
        ("payment_status", "COMPLETE"),
        ("item_name", "Yummi wallet top-up"),
        ("item_description", ""),
        ("amount_gross", "100.00"),
        ("amount_fee", "-2.30"),
        ("amount_net", "97.70"),
        ("custom_str1", ""),
        ("name_first", "Thandi"),
        ("email_address", "thandi@example.co.za"),
        ("merchant_id", "10000100"),
    ]
    pairs = [(k, overrides.get(k, v)) for k, v in pairs]
    pairs.append(("signature", payfast.sign(pairs, passphrase)))
    return urlencode(pairs).encode()


def test_itn_is_parsed_in_posted_order_with_its_key_fields():
    ref = uuid.uuid4()
    itn = payfast.parse_itn(itn_body(reference=ref))
    assert itn.reference == ref
    assert itn.payment_status is PayfastStatus.COMPLETE
    assert itn.amount_gross_minor == 10_000
    assert itn.merchant_id == "10000100"
    assert itn.pf_payment_id == "1089250"
    assert [k for k, _ in itn.signed_pairs][:3] == ["m_payment_id", "pf_payment_id", "payment_status"]
    assert "signature" not in dict(itn.signed_pairs)


def test_correctly_signed_itn_passes_the_signature_check():
    payfast.check_signature(payfast.parse_itn(itn_body()), PASSPHRASE)


def test_itn_signed_with_another_passphrase_fails_the_signature_check():
    itn = payfast.parse_itn(itn_body(passphrase="not-ours"))
    with pytest.raises(ItnError) as info:
        payfast.check_signature(itn, PASSPHRASE)
    assert info.value.reason == "bad_signature"


def test_tampered_amount_fails_the_signature_check():
    body = itn_body().replace(b"amount_gross=100.00", b"amount_gross=900.00")
    with pytest.raises(ItnError, match="signature"):
        payfast.check_signature(payfast.parse_itn(body), PASSPHRASE)


def test_amount_check_compares_cents_exactly():
    itn = payfast.parse_itn(itn_body(amount_gross="100.00"))
    payfast.check_amount(itn, 10_000)
    with pytest.raises(ItnError) as info:
        payfast.check_amount(itn, 10_001)
    assert info.value.reason == "amount_mismatch"


def test_merchant_check_refuses_another_merchant():
    itn = payfast.parse_itn(itn_body(merchant_id="99999999"))
    with pytest.raises(ItnError) as info:
        payfast.check_merchant(itn, "10000100")
    assert info.value.reason == "wrong_merchant"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not a form at all",
        b"m_payment_id=1&m_payment_id=2",
        b"\xff\xfe=1",
        b"payment_status=COMPLETE&amount_gross=1.00&merchant_id=1&signature=x",
        b"m_payment_id=" + str(uuid.uuid4()).encode() + b"&payment_status=COMPLETE&amount_gross=abc"
        b"&merchant_id=1&signature=x",
        b"m_payment_id=" + str(uuid.uuid4()).encode() + b"&payment_status=WHATEVER&amount_gross=1.00"
        b"&merchant_id=1&signature=x",
        b"a=" + b"x" * (payfast.MAX_ITN_BYTES + 1),
        b"m_payment_id=" + str(uuid.uuid4()).encode() + b"&payment_status=COMPLETE&amount_gross=1.00"
        b"&merchant_id=1&name_first=%00&signature=x",
    ],
)
def test_malformed_itn_is_an_itn_error_not_a_crash(body):
    with pytest.raises(ItnError):
        payfast.parse_itn(body)


def test_itn_for_a_reference_that_is_not_a_uuid_is_unknown():
    with pytest.raises(ItnError) as info:
        payfast.parse_itn(itn_body().replace(b"m_payment_id=", b"m_payment_id=x", 1))
    assert info.value.reason == "unknown_payment"


def test_validation_body_is_the_posted_fields_without_signature():
    itn = payfast.parse_itn(itn_body())
    body = payfast.validation_body(itn)
    assert "signature=" not in body
    assert body.startswith("m_payment_id=")
    assert "item_name=Yummi+wallet+top-up" in body


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("197.97.145.145", "197.97.145.145"), ("::ffff:197.97.145.145", "197.97.145.145"), ("[::1]", "::1")],
)
def test_client_ip_is_normalised(raw, expected):
    assert parse_client_ip(raw) == ipaddress.ip_address(expected)


async def test_literal_ips_and_ranges_in_valid_hosts_need_no_lookup():
    hosts = SourceHosts(["197.97.145.144/28", "127.0.0.1"], timeout=0.1, ttl=60)
    assert await hosts.allows("197.97.145.150")
    assert await hosts.allows("::ffff:127.0.0.1")
    assert not await hosts.allows("197.97.145.200")
    assert not await hosts.allows("10.0.0.1")


async def test_source_check_cannot_run_when_no_host_is_known():
    hosts = SourceHosts([], timeout=0.1, ttl=60)
    with pytest.raises(Unavailable):
        await hosts.allows("127.0.0.1")


async def test_garbage_client_ip_is_an_untrusted_source():
    hosts = SourceHosts(["127.0.0.1"], timeout=0.1, ttl=60)
    with pytest.raises(ItnError) as info:
        await hosts.allows("not-an-ip")
    assert info.value.reason == "untrusted_source"
