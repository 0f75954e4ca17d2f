"""The edge cache of catalog pages: TTL, byte budget, one fetch per concurrent miss, activations."""

from __future__ import annotations

import asyncio

import pytest

from yummi_gateway.page_cache import CachedPage, PageCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """A catalog stand-in: counts fetches; each answers the current body (and checksum)."""

    def __init__(self, body: bytes = b"page", checksum: str | None = "v1", live: bool = True) -> None:
        self.calls = 0
        self.body = body
        self.checksum = checksum
        self.live = live
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def __call__(self) -> CachedPage:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return CachedPage(self.body, f'W/"{self.body.decode()}"', checksum=self.checksum, live=self.live)


def cache(clock: Clock, *, ttl: float = 2.0, max_bytes: int = 1024) -> PageCache:
    return PageCache(ttl=ttl, max_bytes=max_bytes, clock=clock)


async def test_a_page_is_kept_for_the_ttl_then_refreshed_in_the_background() -> None:
    clock, load = Clock(), Loader()
    pages = cache(clock)
    assert (await pages.fetch("k", load)).body == b"page"
    load.body = b"newer"
    clock.now += 1.9
    assert (await pages.fetch("k", load)).body == b"page"
    assert load.calls == 1
    clock.now += 0.1  # past the TTL: still answered, while one fetch replaces it
    assert (await pages.fetch("k", load)).body == b"page"
    assert (await pages.fetch("k", load)).body == b"page"
    await asyncio.sleep(0)
    assert load.calls == 2
    assert (await pages.fetch("k", load)).body == b"newer"


async def test_a_page_twice_past_its_ttl_is_fetched_in_the_foreground() -> None:
    clock, load = Clock(), Loader()
    pages = cache(clock)
    await pages.fetch("k", load)
    load.body = b"newer"
    clock.now += 4.0
    assert (await pages.fetch("k", load)).body == b"newer"
    assert load.calls == 2


async def test_a_failed_background_refresh_keeps_the_page_until_twice_its_ttl() -> None:
    clock, load = Clock(), Loader()
    pages = cache(clock)
    await pages.fetch("k", load)
    load.error = ConnectionError("catalog unavailable")
    clock.now += 2.5
    assert (await pages.fetch("k", load)).body == b"page"
    await asyncio.sleep(0)
    assert load.calls == 2
    clock.now += 1.5  # 4 s old: the error reaches the caller
    with pytest.raises(ConnectionError):
        await pages.fetch("k", load)


async def test_a_zero_ttl_or_budget_fetches_every_time() -> None:
    for ttl, budget in ((0.0, 1024), (2.0, 0)):
        load = Loader()
        pages = cache(Clock(), ttl=ttl, max_bytes=budget)
        assert not pages.enabled
        for _ in range(3):
            await pages.fetch("k", load)
        assert load.calls == 3
        assert len(pages) == 0


async def test_concurrent_misses_share_one_fetch() -> None:
    load = Loader()
    load.gate = asyncio.Event()
    pages = cache(Clock())
    waiters = [asyncio.create_task(pages.fetch("k", load)) for _ in range(20)]
    await asyncio.sleep(0)
    load.gate.set()
    answers = await asyncio.gather(*waiters)
    assert load.calls == 1
    assert {a.body for a in answers} == {b"page"}


async def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    load = Loader()
    load.gate = asyncio.Event()
    load.error = LookupError("product not found")
    pages = cache(Clock())
    waiters = [asyncio.create_task(pages.fetch("k", load)) for _ in range(3)]
    await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    load.error = None
    assert (await pages.fetch("k", load)).body == b"page"
    assert load.calls == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_others_fetch() -> None:
    load = Loader()
    load.gate = asyncio.Event()
    pages = cache(Clock())
    first = asyncio.create_task(pages.fetch("k", load))
    second = asyncio.create_task(pages.fetch("k", load))
    await asyncio.sleep(0)
    first.cancel()
    load.gate.set()
    assert (await second).body == b"page"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert load.calls == 1
    assert len(pages) == 1


async def test_an_activation_drops_every_page() -> None:
    clock, load = Clock(), Loader()
    pages = cache(clock)
    await pages.fetch("a", load)
    await pages.fetch("b", load)
    pages.invalidate("v2")
    assert len(pages) == 0
    load.checksum = "v2"
    await pages.fetch("a", load)
    assert load.calls == 3
    await pages.fetch("a", load)
    assert load.calls == 3


async def test_a_fetch_that_raced_an_activation_is_answered_but_not_kept() -> None:
    load = Loader()
    load.gate = asyncio.Event()
    pages = cache(Clock())
    waiter = asyncio.create_task(pages.fetch("k", load))
    await asyncio.sleep(0)
    pages.invalidate("v2")
    load.gate.set()
    assert (await waiter).body == b"page"
    assert len(pages) == 0
    # and a request after the activation does not join the old fetch
    load.gate = None
    load.checksum, load.body = "v2", b"new"
    assert (await pages.fetch("k", load)).body == b"new"


async def test_a_live_page_of_another_version_than_announced_is_not_kept() -> None:
    load = Loader(checksum="v1")
    pages = cache(Clock())
    pages.invalidate("v2")  # announced, but this catalog replica still serves v1
    await pages.fetch("k", load)
    await pages.fetch("k", load)
    assert load.calls == 2
    # a page of a named version (dataset_version=...) is not the live one: kept whatever was announced
    named = Loader(checksum="v0", live=False)
    await pages.fetch("named", named)
    await pages.fetch("named", named)
    assert named.calls == 1


async def test_the_byte_budget_evicts_the_least_recently_used() -> None:
    clock = Clock()
    pages = cache(clock, max_bytes=100)
    loads = {key: Loader(body=key.encode() * 10) for key in "abc"}  # 10 bytes each
    big = Loader(body=b"x" * 30)  # more than a quarter of the budget: answered, never kept
    await pages.fetch("big", big)
    assert len(pages) == 0
    for key in "abc":
        await pages.fetch(key, loads[key])
    await pages.fetch("a", loads["a"])  # a is now the most recent
    for n in range(9):
        await pages.fetch(f"filler{n}", Loader(body=b"f" * 10))
    assert pages.size_bytes <= 100
    assert pages.get("a") is not None
    assert pages.get("b") is None
    assert pages.get("c") is None
