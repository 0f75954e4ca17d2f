"""The trusted-proxy client IP rule and Svix webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from yummi_gateway.config import GatewayConfig
from yummi_gateway.domain.client_ip import resolve_client_ip
from yummi_gateway.domain.webhooks import InvalidWebhook, verify_svix

TRUSTED = GatewayConfig(trusted_proxies="10.0.0.0/8, 192.168.1.1").trusted_proxy_networks


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert resolve_client_ip("203.0.113.9", ["1.2.3.4"], TRUSTED) == "203.0.113.9"


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    assert resolve_client_ip("10.0.0.1", ["1.2.3.4"], ()) == "10.0.0.1"


def test_behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() -> None:
    # the left-most entry is whatever the client claimed; only hops our proxies appended count
    assert (
        resolve_client_ip("10.0.0.1", ["6.6.6.6, 197.97.145.144, 192.168.1.1"], TRUSTED) == "197.97.145.144"
    )


def test_several_forwarded_for_headers_are_read_as_one_list() -> None:
    assert resolve_client_ip("10.0.0.1", ["6.6.6.6", "197.97.145.144"], TRUSTED) == "197.97.145.144"


def test_garbage_in_forwarded_for_stops_at_the_last_vouched_address() -> None:
    assert resolve_client_ip("10.0.0.1", ["not-an-ip, 10.0.0.2"], TRUSTED) == "10.0.0.2"


def test_invalid_trusted_proxies_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        GatewayConfig(trusted_proxies="10.0.0.0/8,nonsense")


KEY = b"0123456789abcdef0123456789abcdef"


def sign(msg_id: str, ts: str, body: bytes) -> str:
    return (
        "v1,"
        + base64.b64encode(hmac.new(KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    )


def test_a_correctly_signed_recent_webhook_is_accepted() -> None:
    verify_svix(
        key=KEY,
        msg_id="msg_1",
        timestamp="1000",
        signatures="v1,bogus " + sign("msg_1", "1000", b"{}"),
        body=b"{}",
        now=1010,
    )


@pytest.mark.parametrize(
    ("msg_id", "ts", "body", "now"),
    [("msg_1", "1000", b'{"x":1}', 1010), ("msg_2", "1000", b"{}", 1010), ("msg_1", "1000", b"{}", 2000)],
)
def test_tampered_or_replayed_webhooks_are_refused(msg_id: str, ts: str, body: bytes, now: float) -> None:
    with pytest.raises(InvalidWebhook):
        verify_svix(
            key=KEY, msg_id=msg_id, timestamp=ts, signatures=sign("msg_1", "1000", b"{}"), body=body, now=now
        )
