"""PayFast ITNs at the edge: the source check sees the socket peer, never a client-sent X-Forwarded-For."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from yummi_devstack import ServiceGroup

from .conftest import Stack
from .helpers import balance, extra_services, pay_on_simulator, query, wait_for

pytestmark = pytest.mark.e2e

FORGED_PAYFAST_IP = "192.0.2.10"  # TEST-NET-1: stands for one of PayFast's addresses in this test
NOT_PAYFAST_IP = "203.0.113.9"  # TEST-NET-3


@dataclass
class Capture:
    """An ITN receiver standing in for PayFast's view of notify_url: keeps each body, answers 200."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    captured = Capture()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            captured.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    captured.url = f"http://127.0.0.1:{server.server_address[1]}/payments/payfast/itn"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield captured
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def payfast_elsewhere(
    stack: Stack, capture: Capture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceGroup]:
    """A payments process that believes PayFast is at 192.0.2.10 only, behind a gateway that trusts no proxy.

    Its checkouts name the capture server as notify_url, so the test holds a genuine signed ITN to replay.
    """
    with extra_services(
        stack,
        ["payments", "gateway"],
        tmp_path_factory.mktemp("payfast-edge-logs"),
        PAYFAST_VALID_HOSTS=FORGED_PAYFAST_IP,
        PAYFAST_NOTIFY_URL=capture.url,
        TRUSTED_PROXIES="",
    ) as group:
        yield group


def test_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored_and_credits_nothing(
    stack: Stack, capture: Capture, payfast_elsewhere: ServiceGroup
) -> None:
    shopper = stack.auth("edge_shopper", "edge-shopper@e2e.example")
    with httpx.Client(base_url=payfast_elsewhere.gateway_url, timeout=30) as edge:
        initiated = edge.post(
            "/v1/payments/payfast/initiate", json={"amount_minor": 2_500, "currency": "ZAR"}, headers=shopper
        )
        assert initiated.status_code in (200, 201), initiated.text
        reference = initiated.json()["reference"]
        seen = len(capture.bodies)
        pay_on_simulator(
            stack, initiated.json()
        )  # the simulator signs an ITN and posts it to the capture server
        wait_for(lambda: len(capture.bodies), lambda n: n > seen)
        itn = capture.bodies[-1]
        assert f"m_payment_id={reference}".encode() in itn

        # From 127.0.0.1 (not PayFast for this payments process), claiming PayFast's address in a header.
        forged = edge.post(
            "/payments/payfast/itn",
            content=itn,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-For": FORGED_PAYFAST_IP,
            },
        )
        assert forged.status_code == 400, forged.text
        status = edge.get(
            "/v1/payments/payfast/status", params={"reference": reference}, headers=shopper
        ).json()
        assert (status["status"], status["wallet_credited"]) == ("pending", False)
    assert balance(stack, shopper)["balance_minor"] == 0
    audits = query(
        stack.database_url,
        "SELECT client_ip, outcome, reason FROM payments.itn_audit WHERE reference = $1 ORDER BY created_at",
        reference,
    )
    assert [tuple(a) for a in audits] == [("127.0.0.1", "rejected", "untrusted_source")]

    # The very same ITN is genuine: from 127.0.0.1, which the stack's own payments process trusts, it is
    # accepted even though its header now names an address that is not PayFast's (ignored both ways).
    accepted = stack.client.post(
        "/payments/payfast/itn",
        content=itn,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": NOT_PAYFAST_IP},
    )
    assert accepted.status_code == 200, accepted.text
    wait_for(lambda: balance(stack, shopper)["balance_minor"], lambda b: b == 2_500)
    wallet = balance(stack, shopper)
    assert [t["entry_type"] for t in wallet["transactions"]] == ["credit"]
