"""A short-lived cache of public catalog pages at the edge, dropped whenever a dataset version is activated.

Catalog pages are the same for every caller (anonymous or signed in) and a dataset version never changes once
indexed, so the gateway keeps the rendered body and ETag of a page for `GATEWAY_CATALOG_CACHE_SECONDS` and
answers repeats without the gRPC hop. Rate limits still run first (they are middleware), so a cached page
costs a caller the same allowance as a fetched one.

Freshness: `catalog.dataset.activated` (plain NATS, like the catalog replicas' own readers) and any activation
or import through this gateway clear every page at once and bump a generation; a fetch that started before
that is answered but not kept, and a live page read from a catalog replica that has not switched yet (its
checksum is not the one announced) is not kept either. The TTL bounds staleness when the message is missed,
as `CATALOG_LIVE_REFRESH_SECONDS` does in the catalog. Concurrent misses for one page share one fetch, and a
page past its TTL (but not twice it) is still answered while one fetch in the background replaces it
(stale-while-revalidate), so a popular page never makes its callers wait for the catalog.

A page is kept under its path and raw query string, so `PageCacheMiddleware` answers a repeat before routing
and parameter parsing (most of the work of a cached answer); the route handlers fill the cache after FastAPI
has validated the query, so a query that is refused is never kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from yummi_gateway.caller import scope_header
from yummi_gateway.domain.http_caching import etag_matches
from yummi_gateway.responses import JSONBytes

if TYPE_CHECKING:
    from yummi_gateway.bootstrap import Gateway

# A dataset version never changes once indexed, so a page is named by the dataset's checksum and the query;
# a minute of staleness after an activation is the price of letting clients and CDNs keep pages.
CACHEABLE = "public, max-age=60"
# the GET routes whose answers the cache keeps (route templates: metrics label a cached answer with them)
CACHED_ROUTES = ("/v1/catalog", "/v1/thin/catalog", "/v1/products/{product_id}")
PRODUCT_PREFIX = "/v1/products/"


@dataclass(slots=True)
class CachedPage:
    """A rendered answer: its body, its validator, and which dataset it was read from."""

    body: bytes
    etag: str | None
    # the dataset checksum (or version) the page was read from; None when the answer does not say
    checksum: str | None = None
    # read from the live version (no dataset_version in the query): an activation makes it stale
    live: bool = True
    stored_at: float = 0.0
    # how the page was fetched: run again in the background when the page is past its TTL (set by the cache)
    reload: Callable[[], Awaitable[CachedPage]] | None = None


class PageCache:
    """An LRU of rendered pages within a byte budget, each kept at most `ttl` seconds (0 turns it off)."""

    def __init__(
        self,
        *,
        ttl: float,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        on_hit: Callable[[], None] | None = None,
        on_miss: Callable[[], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._on_hit = on_hit
        self._on_miss = on_miss
        self._entries: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Task[CachedPage]] = {}
        self.size_bytes = 0
        self.generation = 0
        self.live_checksum: str | None = None

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self) -> None:
        if self._on_hit is not None:
            self._on_hit()

    def get(self, key: Hashable) -> CachedPage | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = self._clock() - entry.stored_at
        if age >= self.ttl:
            if age >= 2 * self.ttl or entry.reload is None:
                self._drop(key)  # too old to answer while it is fetched again: the caller fetches it
                return None
            self._start(key, entry.reload)  # stale-while-revalidate: one refresh, this answer meanwhile
        self._entries.move_to_end(key)
        return entry

    async def fetch(self, key: Hashable, load: Callable[[], Awaitable[CachedPage]]) -> CachedPage:
        """The cached page, else `load()`'s (one call for concurrent misses of `key`); errors are not kept."""
        if not self.enabled:
            return await load()
        entry = self.get(key)
        if entry is not None:
            self.hit()
            return entry
        if self._on_miss is not None:
            self._on_miss()
        # shield: a caller that goes away (client disconnect) does not cancel the others' fetch
        return await asyncio.shield(self._start(key, load))

    def invalidate(self, live_checksum: str | None = None) -> None:
        """A version was activated: forget every page and every fetch in flight; expect `live_checksum`."""
        self.generation += 1
        self.live_checksum = live_checksum or None
        self._entries.clear()
        self._inflight.clear()
        self.size_bytes = 0

    def _start(self, key: Hashable, load: Callable[[], Awaitable[CachedPage]]) -> asyncio.Task[CachedPage]:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load, self.generation))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        return task

    async def _load(
        self, key: Hashable, load: Callable[[], Awaitable[CachedPage]], generation: int
    ) -> CachedPage:
        try:
            page = await load()
            page.reload = load
            if generation == self.generation and self._fresh(page):
                self._store(key, page)
            return page
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]

    def _fresh(self, page: CachedPage) -> bool:
        # a live page from a replica that has not switched to the announced version yet is answered, not kept
        return not (
            page.live and self.live_checksum and page.checksum and page.checksum != self.live_checksum
        )

    def _store(self, key: Hashable, page: CachedPage) -> None:
        size = len(page.body)
        if size > self.max_bytes // 4:
            return  # one page may not crowd out the rest
        self._drop(key)
        page.stored_at = self._clock()
        self._entries[key] = page
        self.size_bytes += size
        while self.size_bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size_bytes -= len(entry.body)


def _retrieve(task: asyncio.Task[CachedPage]) -> None:
    # every waiter may have gone away: mark the exception seen so asyncio does not log it as lost
    if not task.cancelled():
        task.exception()


def page_key(scope: Scope) -> tuple[str, bytes]:
    """A cached page's name: the request's path and raw query string (another spelling is another page)."""
    return scope["path"], scope["query_string"]


def cached_response(page: CachedPage, if_none_match: str | None) -> Response:
    """304 when If-None-Match names the page's ETag, else the page with its validator."""
    headers = {"Cache-Control": CACHEABLE}
    if page.etag is not None:
        headers["ETag"] = page.etag
        if etag_matches(if_none_match, page.etag):
            return Response(status_code=304, headers=headers)
    return JSONBytes(page.body, headers=headers)


class PageCacheMiddleware:
    """Pure ASGI, inside the rate limits: answers a GET of a cached catalog page without routing it."""

    def __init__(self, app: ASGIApp, *, gateway: Callable[[], Gateway]) -> None:
        self.app = app
        self.gateway = gateway
        # route template → the app's route object, learnt from routed requests (metrics label answers by it)
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(PRODUCT_PREFIX):
            template = CACHED_ROUTES[2]
        elif path in CACHED_ROUTES:
            template = path
        else:
            await self.app(scope, receive, send)
            return
        pages = self.gateway().pages
        page = pages.get(page_key(scope)) if pages.enabled else None
        if page is None:
            await self.app(scope, receive, send)
            if template not in self._routes and getattr(scope.get("route"), "path", None) == template:
                self._routes[template] = scope["route"]
            return
        pages.hit()
        scope["route"] = self._routes.get(template)
        response = cached_response(page, scope_header(scope, b"if-none-match"))
        await response(scope, receive, send)
