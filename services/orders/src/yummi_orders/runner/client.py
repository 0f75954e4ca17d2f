"""The runner's side of the gateway's queue API: claim, heartbeat and ack over HTTP with a bearer token."""

from __future__ import annotations

from typing import Any

import httpx

USER_AGENT = "yummi-runner/0.1"


class GatewayError(Exception):
    """The gateway answered with an error; `status` is the HTTP code (0 when it could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.retry_after: float | None = None

    @property
    def lease_lost(self) -> bool:
        """Another runner holds the order now, or it is no longer claimed (requeued, finished)."""
        return self.status in (403, 404, 409)

    @property
    def auth_failed(self) -> bool:
        return self.status in (401, 403)

    @property
    def transient(self) -> bool:
        """Worth retrying: unreachable, rate limited, or a server-side failure."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def _error(response: httpx.Response) -> GatewayError:
    try:
        body = response.json()
        detail = str(body.get("detail") or body.get("title") or response.text)
    except ValueError:
        detail = response.text
    error = GatewayError(response.status_code, detail[:300])
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            error.retry_after = max(0.0, float(retry_after))
        except ValueError:
            error.retry_after = None
    return error


class GatewayClient:
    """`POST /v1/orders/next`, `/v1/orders/{id}/heartbeat` and `/v1/orders/{id}/ack` as the token's runner."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )

    async def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(0, f"gateway unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    async def claim_next(self, *, retailer: str | None = None) -> dict[str, Any] | None:
        """The next queued order, now leased to this runner, or None when the queue is empty."""
        params = {"retailer": retailer} if retailer else None
        response = await self._post("/v1/orders/next", params=params)
        if response.status_code == 204:
            return None
        order: dict[str, Any] = response.json()
        return order

    async def heartbeat(self, order_id: str) -> str | None:
        """Extend the lease; returns the new `lease_expires_at`."""
        response = await self._post(f"/v1/orders/{order_id}/heartbeat")
        expires: str | None = response.json().get("lease_expires_at")
        return expires

    async def ack(
        self, order_id: str, *, outcome: str, notes: str | None = None, retailer_reference: str | None = None
    ) -> dict[str, Any]:
        """Report `completed` or `failed`; returns the order as it now stands."""
        body: dict[str, Any] = {"outcome": outcome}
        if notes:
            body["notes"] = notes
        if retailer_reference:
            body["retailer_reference"] = retailer_reference
        order: dict[str, Any] = (await self._post(f"/v1/orders/{order_id}/ack", json=body)).json()
        return order

    async def aclose(self) -> None:
        await self._http.aclose()
