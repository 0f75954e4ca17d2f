"""The trusted-proxy client IP rule (TRUSTED_PROXIES, in the one Settings class) and Svix signatures."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from svix.webhooks import Webhook

from yummi_common.settings import Settings
from yummi_gateway.adapters.clerk_webhooks import InvalidWebhook, clerk_webhook_verifier, verify_clerk_webhook
from yummi_gateway.caller import client_ip_of
from yummi_gateway.domain.client_ip import resolve_client_ip

TRUSTED = Settings(trusted_proxies="10.0.0.0/8, 192.168.1.1").trusted_proxy_networks


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
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8,nonsense")


def test_the_client_ip_of_a_request_follows_the_same_rule() -> None:
    scope = {"client": ("10.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"6.6.6.6, 197.97.145.144")]}
    assert client_ip_of(scope, TRUSTED) == "197.97.145.144"
    assert client_ip_of(scope, ()) == "10.0.0.1"
    assert client_ip_of({"client": ("203.0.113.9", 1), "headers": scope["headers"]}, TRUSTED) == "203.0.113.9"


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
SIGNER = Webhook(SECRET)  # the svix library's own signer, as Clerk's deliveries are made


def svix_headers(
    msg_id: str, body: bytes, *, at: datetime | None = None, signer: Webhook = SIGNER
) -> dict[str, str]:
    at = at or datetime.now(tz=UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": signer.sign(msg_id, at, body.decode()),
    }


def test_a_correctly_signed_recent_webhook_is_accepted() -> None:
    headers = svix_headers("msg_1", b"{}")
    headers["svix-signature"] = "v1,bm90LXRoaXM= " + headers["svix-signature"]  # rotation: any match will do
    verify_clerk_webhook(clerk_webhook_verifier(SECRET), body=b"{}", headers=headers)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b'{"x":1}'),  # another body
        lambda h, b: ({**h, "svix-id": "msg_2"}, b),  # another message id
        lambda h, b: ({**h, "svix-timestamp": str(int(h["svix-timestamp"]) + 1)}, b),  # another time
        lambda h, b: ({k: v for k, v in h.items() if k != "svix-signature"}, b),  # unsigned
        lambda h, b: ({**h, "svix-signature": "v1"}, b),  # no value
        lambda h, b: ({**h, "svix-signature": "v1,@@@not-base64@@@"}, b),
        lambda h, b: ({**h, "svix-timestamp": "soon"}, b),
        lambda h, b: (h, b"\xff\xfe"),  # not UTF-8
    ],
)
def test_tampered_or_malformed_webhooks_are_refused(tamper: object) -> None:
    headers, body = tamper(svix_headers("msg_1", b"{}"), b"{}")  # type: ignore[operator]
    with pytest.raises(InvalidWebhook):
        verify_clerk_webhook(clerk_webhook_verifier(SECRET), body=body, headers=headers)


def test_a_replayed_webhook_outside_five_minutes_is_refused() -> None:
    old = datetime.now(tz=UTC) - timedelta(minutes=6)
    with pytest.raises(InvalidWebhook):
        verify_clerk_webhook(
            clerk_webhook_verifier(SECRET), body=b"{}", headers=svix_headers("m", b"{}", at=old)
        )


def test_a_webhook_signed_with_another_secret_is_refused() -> None:
    other = Webhook("whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode())
    with pytest.raises(InvalidWebhook):
        verify_clerk_webhook(
            clerk_webhook_verifier(SECRET), body=b"{}", headers=svix_headers("m", b"{}", signer=other)
        )


@pytest.mark.parametrize("secret", ["whsec_", "whsec_!!!!", "whsec_c2hvcnQ="])
def test_a_malformed_webhook_secret_is_refused_up_front(secret: str) -> None:
    with pytest.raises(ValueError, match="CLERK_WEBHOOK_SECRET"):
        clerk_webhook_verifier(secret)
