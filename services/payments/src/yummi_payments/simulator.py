"""A local stand-in for PayFast: hosted checkout page, signed ITN to notify_url, and server confirmation.

Run `python -m yummi_payments.simulator --port 8099`, then point PAYFAST_PROCESS_URL at
`http://127.0.0.1:8099/eng/process` and PAYFAST_VALIDATE_URL at `http://127.0.0.1:8099/eng/query/validate`
(and PAYFAST_VALID_HOSTS at 127.0.0.1) so a whole top-up runs on one machine.

Like PayFast, the simulator posts an ITN at once and, while the merchant does not answer 200, again later:
PayFast retries after about 10 minutes and then at exponentially longer intervals. `--retry-delays` sets the
waits between attempts (seconds, comma-separated) so tests can use a short schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from yummi_payments.config import SANDBOX_MERCHANT_ID, SANDBOX_MERCHANT_KEY, SANDBOX_PASSPHRASE
from yummi_payments.domain import payfast

MAX_FORM_BYTES = 16 * 1024
# Waits before the 2nd, 3rd, ... attempt of an ITN the merchant did not answer with 200: PayFast's documented
# behaviour (one attempt at once, one after 10 minutes, then exponentially longer), cut off after a day.
PAYFAST_RETRY_DELAYS: tuple[float, ...] = (600.0, 1_200.0, 2_400.0, 4_800.0, 9_600.0, 19_200.0, 38_400.0)


@dataclass
class Notification:
    """One ITN the simulator sent, and what the merchant's notify_url answered."""

    reference: str
    payment_status: str
    notify_url: str
    status_code: int | None
    error: str | None = None
    attempt: int = 1


@dataclass
class Delivery:
    """Every attempt at one ITN: delivered once the merchant answered 200; given up after the last retry."""

    reference: str
    payment_status: str
    attempts: int = 0
    delivered: bool = False
    gave_up: bool = False

    @property
    def pending(self) -> bool:
        return not (self.delivered or self.gave_up)


@dataclass
class SimulatorState:
    checkouts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)  # param strings (without signature) of ITNs we sent
    notifications: list[Notification] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


class PayfastSimulator:
    """PayFast's hosted checkout for one merchant account, kept in memory."""

    def __init__(
        self,
        *,
        merchant_id: str = SANDBOX_MERCHANT_ID,
        merchant_key: str = SANDBOX_MERCHANT_KEY,
        passphrase: str | None = SANDBOX_PASSPHRASE,
        notify_timeout: float = 10.0,
        retry_delays: Sequence[float] = PAYFAST_RETRY_DELAYS,
    ) -> None:
        self.merchant_id = merchant_id
        self.merchant_key = merchant_key
        self.passphrase = passphrase or None
        self.notify_timeout = notify_timeout
        self.retry_delays = tuple(float(delay) for delay in retry_delays)
        if any(delay < 0 for delay in self.retry_delays):
            raise ValueError("retry delays must not be negative")
        self.state = SimulatorState()
        self._retries: set[asyncio.Task[None]] = set()

    # --- the pieces tests may also call directly ----------------------------------------------------

    def build_itn(
        self, checkout: dict[str, str], *, payment_status: str = "COMPLETE"
    ) -> list[tuple[str, str]]:
        """A signed ITN for a checkout, with PayFast's field set, remembered so /validate says VALID."""
        gross = Decimal(checkout.get("amount", "0"))
        fee = -(gross * Decimal("0.035") + Decimal("2.00")).quantize(Decimal("0.01"))
        pairs = [
            ("m_payment_id", checkout.get("m_payment_id", "")),
            ("pf_payment_id", str(secrets.randbelow(9_000_000) + 1_000_000)),
            ("payment_status", payment_status),
            ("item_name", checkout.get("item_name", "")),
            ("item_description", checkout.get("item_description", "")),
            ("amount_gross", f"{gross:.2f}"),
            ("amount_fee", f"{fee:.2f}"),
            ("amount_net", f"{gross + fee:.2f}"),
            *[(f"custom_str{i}", checkout.get(f"custom_str{i}", "")) for i in range(1, 6)],
            *[(f"custom_int{i}", checkout.get(f"custom_int{i}", "")) for i in range(1, 6)],
            ("name_first", checkout.get("name_first", "Test")),
            ("name_last", checkout.get("name_last", "Buyer")),
            ("email_address", checkout.get("email_address", "buyer@example.com")),
            ("merchant_id", self.merchant_id),
        ]
        self.state.issued.add(payfast.param_string(pairs))
        return [*pairs, ("signature", payfast.sign(pairs, self.passphrase))]

    def is_issued(self, body: str) -> bool:
        """Whether a posted-back param string is one of the ITNs we sent (the signature, if any, ignored)."""
        try:
            pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            return False
        return payfast.param_string([(k, v) for k, v in pairs if k != "signature"]) in self.state.issued

    def checkout_error(self, pairs: list[tuple[str, str]]) -> str | None:
        """Why PayFast would refuse this checkout form (None when it is acceptable)."""
        data = dict(pairs)
        if data.get("merchant_id") != self.merchant_id or data.get("merchant_key") != self.merchant_key:
            return "Merchant is unknown or the merchant key is wrong."
        unsigned = {k: v for k, v in pairs if k != "signature"}
        try:
            expected = payfast.sign(payfast.checkout_pairs(unsigned), self.passphrase)
        except ValueError as exc:
            return str(exc)
        if data.get("signature", "").lower() != expected:
            return "Generated signature does not match submitted signature."
        try:
            amount = Decimal(data.get("amount", ""))
        except ArithmeticError:
            return "Amount is not valid."
        if amount < Decimal("5.00"):
            return "Amount must be at least R5.00."
        if not data.get("item_name") or not data.get("m_payment_id"):
            return "item_name and m_payment_id are required."
        return None

    async def notify(
        self, checkout: dict[str, str], pairs: list[tuple[str, str]], *, attempt: int = 1
    ) -> Notification:
        """POST an ITN to the checkout's notify_url once, as PayFast's servers do, and record the answer."""
        url = checkout.get("notify_url", "")
        record = Notification(
            reference=checkout.get("m_payment_id", ""),
            payment_status=dict(pairs)["payment_status"],
            notify_url=url,
            status_code=None,
            attempt=attempt,
        )
        if url:
            try:
                async with httpx.AsyncClient(timeout=self.notify_timeout) as client:
                    response = await client.post(
                        url,
                        content=urlencode(pairs).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                record.status_code = response.status_code
            except httpx.HTTPError as exc:
                record.error = str(exc) or type(exc).__name__
        self.state.notifications.append(record)
        return record

    async def deliver(self, checkout: dict[str, str], pairs: list[tuple[str, str]]) -> Notification:
        """The first attempt at once; while the merchant does not answer 200, retries in the background after
        each of `retry_delays` (the same signed ITN each time, as PayFast resends it)."""
        delivery = Delivery(
            reference=checkout.get("m_payment_id", ""), payment_status=dict(pairs)["payment_status"]
        )
        self.state.deliveries.append(delivery)
        first = await self._attempt(delivery, checkout, pairs)
        if delivery.pending:
            task = asyncio.get_running_loop().create_task(self._retry(delivery, checkout, pairs))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        return first

    async def _attempt(
        self, delivery: Delivery, checkout: dict[str, str], pairs: list[tuple[str, str]]
    ) -> Notification:
        delivery.attempts += 1
        record = await self.notify(checkout, pairs, attempt=delivery.attempts)
        if record.status_code == 200:
            delivery.delivered = True
        elif delivery.attempts > len(self.retry_delays) or not record.notify_url:
            delivery.gave_up = True
        return record

    async def _retry(
        self, delivery: Delivery, checkout: dict[str, str], pairs: list[tuple[str, str]]
    ) -> None:
        while delivery.pending:
            await asyncio.sleep(self.retry_delays[delivery.attempts - 1])
            await self._attempt(delivery, checkout, pairs)

    async def aclose(self) -> None:
        """Stop the pending retries (the server is shutting down)."""
        for task in list(self._retries):
            task.cancel()
        for task in list(self._retries):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- HTTP --------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/eng/process", self._process, methods=["GET", "POST"]),
                Route("/eng/process/{checkout_id}/pay", self._pay, methods=["POST"]),
                Route("/eng/process/{checkout_id}/cancel", self._cancel, methods=["POST"]),
                Route("/eng/query/validate", self._validate, methods=["POST"]),
                Route("/simulator/notifications", self._notifications, methods=["GET"]),
                Route("/simulator/deliveries", self._deliveries, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    async def _process(self, request: Request) -> Response:
        if request.method == "GET":
            pairs = list(request.query_params.multi_items())
        else:
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                return _page("Checkout refused", "<p>The form is too large.</p>", status=413)
            pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        error = self.checkout_error(pairs)
        if error:
            return _page("Checkout refused", f"<p>{html.escape(error)}</p>", status=400)
        checkout_id = secrets.token_urlsafe(16)
        self.state.checkouts[checkout_id] = pairs
        data = dict(pairs)
        shown = (("Item", "item_name"), ("Amount (ZAR)", "amount"), ("Reference", "m_payment_id"))
        rows = "".join(
            f"<tr><th>{html.escape(label)}</th><td>{html.escape(data.get(name, ''))}</td></tr>"
            for label, name in shown
        )
        body_html = f"""
<p>PayFast simulator — merchant {html.escape(self.merchant_id)}</p>
<table>{rows}</table>
<form method="post" action="/eng/process/{checkout_id}/pay"><button type="submit" name="payment_status"
 value="COMPLETE">Pay</button></form>
<form method="post" action="/eng/process/{checkout_id}/pay"><button type="submit" name="payment_status"
 value="FAILED">Decline card</button></form>
<form method="post" action="/eng/process/{checkout_id}/cancel"><button type="submit">Cancel</button></form>
"""
        return _page("Pay with PayFast (simulator)", body_html)

    async def _pay(self, request: Request) -> Response:
        checkout = self.state.checkouts.pop(request.path_params["checkout_id"], None)
        if checkout is None:
            return _page("Checkout expired", "<p>This checkout is unknown or already paid.</p>", status=404)
        form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
        status = form.get("payment_status", "COMPLETE").upper()
        if status not in ("COMPLETE", "FAILED"):
            status = "COMPLETE"
        data = dict(checkout)
        itn = self.build_itn(data, payment_status=status)
        record = await self.deliver(data, itn)
        if status == "COMPLETE" and data.get("return_url"):
            return RedirectResponse(data["return_url"], status_code=303)
        outcome = f"notify_url answered {record.status_code}" if record.status_code else "no ITN delivered"
        return _page("Payment " + status.lower(), f"<p>{html.escape(outcome)}</p>")

    async def _cancel(self, request: Request) -> Response:
        checkout = self.state.checkouts.pop(request.path_params["checkout_id"], None)
        if checkout is None:
            return _page("Checkout expired", "<p>This checkout is unknown.</p>", status=404)
        cancel_url = dict(checkout).get("cancel_url")
        if cancel_url:
            return RedirectResponse(cancel_url, status_code=303)
        return _page("Payment cancelled", "<p>You cancelled the payment.</p>")

    async def _validate(self, request: Request) -> Response:
        body = await request.body()
        valid = len(body) <= MAX_FORM_BYTES and self.is_issued(body.decode("utf-8", errors="replace"))
        return PlainTextResponse("VALID" if valid else "INVALID")

    async def _notifications(self, _request: Request) -> Response:
        return JSONResponse([record.__dict__ for record in self.state.notifications])

    async def _deliveries(self, _request: Request) -> Response:
        return JSONResponse(
            [{**record.__dict__, "pending": record.pending} for record in self.state.deliveries]
        )


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status)


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from None
    if any(delay < 0 for delay in delays):
        raise argparse.ArgumentTypeError("retry delays must not be negative")
    return delays


def create_app(**kwargs: Any) -> Starlette:
    return PayfastSimulator(**kwargs).app()


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m yummi_payments.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    configured = os.environ.get("PAYFAST_MERCHANT_ID")
    parser.add_argument("--merchant-id", default=configured or SANDBOX_MERCHANT_ID)
    parser.add_argument(
        "--merchant-key", default=os.environ.get("PAYFAST_MERCHANT_KEY") or SANDBOX_MERCHANT_KEY
    )
    passphrase = os.environ.get("PAYFAST_PASSPHRASE")  # the same defaults as the service's own config
    if passphrase is None:
        passphrase = "" if configured else SANDBOX_PASSPHRASE
    parser.add_argument("--passphrase", default=passphrase)
    parser.add_argument(
        "--retry-delays",
        type=_delays,
        default=PAYFAST_RETRY_DELAYS,
        help="seconds to wait before each retry of an ITN not answered with 200, e.g. 0.5,1,2 "
        "(default: PayFast's 10 minutes, then exponentially longer)",
    )
    args = parser.parse_args(argv)
    simulator = PayfastSimulator(
        merchant_id=args.merchant_id,
        merchant_key=args.merchant_key,
        passphrase=args.passphrase or None,
        retry_delays=args.retry_delays,
    )
    uvicorn.run(simulator.app(), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
