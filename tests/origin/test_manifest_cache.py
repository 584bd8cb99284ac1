"""The manifest cache (gateway/origin/manifest_cache.py): one origin fetch and one prepare per origin version.

The real `OriginClient` runs over an in-process transport that counts requests and can hold them, so
concurrency and simulated time (`now`) are exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate

import httpx
import pytest

from gateway.config import OriginSettings
from gateway.errors import ManifestTooLarge, OriginBadStatus
from gateway.manifests.template import PreparedManifest
from gateway.origin.client import OriginClient
from gateway.origin.manifest_cache import ManifestCache, freshness_seconds

NOW = 1_800_000_000.0
VOD = b"#EXTM3U\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n"
LIVE = b"#EXTM3U\n#EXTINF:2,\nseg.ts\n"
SETTINGS = dataclasses.replace(OriginSettings(), vod_manifest_cache_seconds=60.0, live_manifest_cache_seconds=1.0)
URL = "http://origin.test/vod/t/index.m3u8"


class Origin:
    """An origin behind httpx.MockTransport: answers with `answer(request)`, optionally held by `gate`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        return self.answer(request)


class Body(httpx.AsyncByteStream):
    """A response body as a network stream (`content=` would be read already, and raw reads refuse that)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def ok(body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, headers=headers or {}, stream=Body(body))


def serve(body: bytes, headers: dict[str, str] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: ok(body, headers)


class Preparer:
    """A `prepare` callable that records what it prepared; live when the playlist has no ENDLIST."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, body: bytes) -> PreparedManifest:
        self.bodies.append(body)
        return PreparedManifest(chunks=(body.decode(),), slots=(), reloaded=b"#EXT-X-ENDLIST" not in body)


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Origin], OriginClient]]:
    made: list[OriginClient] = []

    def make(origin: Origin) -> OriginClient:
        made.append(OriginClient(SETTINGS, transport=httpx.MockTransport(origin)))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


def cache_for(client: OriginClient, *, max_entries: int = 512, max_bytes: int = 1 << 20) -> ManifestCache:
    return ManifestCache(client, SETTINGS, max_bytes=max_bytes, max_entries=max_entries)


# -- coalescing -------------------------------------------------------------------------------------------


async def test_concurrent_misses_share_one_origin_fetch_and_one_prepare(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    origin, prepare = Origin(serve(VOD)), Preparer()
    origin.gate = asyncio.Event()
    cache = cache_for(client_for(origin))
    waiting = [asyncio.create_task(cache.get(URL, "query:/vod/", prepare, now=NOW)) for _ in range(50)]
    while not origin.requests:  # the first miss reached the origin; the other 49 must wait for it
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    origin.gate.set()
    results = await asyncio.gather(*waiting)
    assert len(origin.requests) == 1 and cache.origin_fetches == 1 and prepare.bodies == [VOD]
    assert all(result is results[0] for result in results)


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    origin, prepare = Origin(lambda _: httpx.Response(503)), Preparer()
    origin.gate = asyncio.Event()
    cache = cache_for(client_for(origin))
    waiting = [asyncio.create_task(cache.get(URL, "v", prepare, now=NOW)) for _ in range(5)]
    while not origin.requests:
        await asyncio.sleep(0)
    origin.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, OriginBadStatus) and result.origin_status == 503 for result in results)
    assert len(origin.requests) == 1 and prepare.bodies == []
    origin.gate, origin.answer = None, serve(VOD)  # the origin recovers: the next request fetches again
    assert (await cache.get(URL, "v", prepare, now=NOW)).chunks == (VOD.decode(),)
    assert len(origin.requests) == 2


async def test_a_waiter_that_gives_up_does_not_cancel_the_shared_fetch(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    origin, prepare = Origin(serve(VOD)), Preparer()
    origin.gate = asyncio.Event()
    cache = cache_for(client_for(origin))
    leader = asyncio.create_task(cache.get(URL, "v", prepare, now=NOW))
    while not origin.requests:
        await asyncio.sleep(0)
    impatient = asyncio.create_task(cache.get(URL, "v", prepare, now=NOW))
    await asyncio.sleep(0)
    impatient.cancel()  # e.g. its viewer disconnected
    origin.gate.set()
    assert (await leader).chunks == (VOD.decode(),)
    assert impatient.cancelled() and len(origin.requests) == 1


async def test_the_request_that_started_the_fetch_may_give_up_too(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    """The first request's viewer leaves mid-fetch: everyone else who waits still gets the manifest."""
    origin, prepare = Origin(serve(VOD)), Preparer()
    origin.gate = asyncio.Event()
    cache = cache_for(client_for(origin))
    leader = asyncio.create_task(cache.get(URL, "v", prepare, now=NOW))
    while not origin.requests:
        await asyncio.sleep(0)
    follower = asyncio.create_task(cache.get(URL, "v", prepare, now=NOW))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0.01)
    origin.gate.set()
    assert (await follower).chunks == (VOD.decode(),)
    assert leader.cancelled() and len(origin.requests) == 1
    assert await cache.get(URL, "v", prepare, now=NOW) is await follower  # and it was cached


async def test_variants_of_one_url_are_prepared_separately(client_for: Callable[[Origin], OriginClient]) -> None:
    origin, prepare = Origin(serve(VOD)), Preparer()
    cache = cache_for(client_for(origin))
    query = await cache.get(URL, "query:/vod/", prepare, now=NOW)
    cookie = await cache.get(URL, "cookie:/cookie/vod/", prepare, now=NOW)
    assert query is not cookie and len(origin.requests) == 2
    assert await cache.get(URL, "query:/vod/", prepare, now=NOW + 1) is query


# -- freshness --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "fresh_for"), [(VOD, 60.0), (LIVE, 1.0)])
async def test_freshness_follows_whether_the_player_reloads_the_manifest(
    client_for: Callable[[Origin], OriginClient], body: bytes, fresh_for: float
) -> None:
    """A manifest loaded once (VOD) stays `vod_manifest_cache_seconds`; a reloaded one (live) the live window."""
    origin, prepare = Origin(serve(body)), Preparer()
    cache = cache_for(client_for(origin))
    first = await cache.get(URL, "v", prepare, now=NOW)
    assert first.reloaded is (body == LIVE)
    assert await cache.get(URL, "v", prepare, now=NOW + fresh_for - 0.01) is first
    assert len(origin.requests) == 1
    await cache.get(URL, "v", prepare, now=NOW + fresh_for)
    assert len(origin.requests) == 2


@pytest.mark.parametrize(
    ("cache_control", "reloaded", "expected"),
    [
        (None, False, 60.0),
        (None, True, 1.0),
        ("max-age=7", False, 7.0),
        ("public, s-maxage=3, max-age=9", True, 9.0),  # `s-maxage` is not `s-max-age`: max-age wins
        ("public, s-max-age=3", True, 3.0),
        ("MAX-AGE=0", False, 0.0),
        ("no-cache", False, 0.0),
        ("private, no-store, max-age=60", False, 0.0),
        ("public", True, 1.0),
        ("max-age=abc", False, 60.0),
    ],
)
def test_freshness_seconds(cache_control: str | None, reloaded: bool, expected: float) -> None:
    prepared = PreparedManifest(chunks=("x",), slots=(), reloaded=reloaded)
    assert freshness_seconds(prepared, cache_control, SETTINGS) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"expires": "Thu, 01 Jan 2026 00:00:30 GMT", "date": "Thu, 01 Jan 2026 00:00:00 GMT"}, 30.0),
        ({"expires": formatdate(NOW + 40, usegmt=True)}, 40.0),  # no Date: counted from `now`
        ({"expires": "0", "date": "Thu, 01 Jan 2026 00:00:00 GMT"}, 0.0),  # invalid: already expired
        ({"expires": "Thu, 01 Jan 2026 00:00:30 GMT", "cache-control": "max-age=5"}, 5.0),  # max-age wins
        ({"cache-control": "max-age=30", "age": "12"}, 18.0),  # an upstream cache held it 12 s already
        ({"cache-control": "max-age=30", "age": "99"}, 0.0),
    ],
)
async def test_expires_and_age_bound_the_freshness(
    client_for: Callable[[Origin], OriginClient], headers: dict[str, str], expected: float
) -> None:
    """What `fresh_for` reports is what queryparam manifests tell shared caches (`public, max-age`)."""
    cache = cache_for(client_for(Origin(serve(VOD, headers))))
    await cache.get(URL, "queryparam:/vod/", Preparer(), now=NOW)
    assert cache.fresh_for(URL, "queryparam:/vod/", now=NOW) == expected
    assert cache.fresh_for(URL, "queryparam:/vod/", now=NOW + 1000) == 0.0
    assert cache.fresh_for(URL, "another:/vod/", now=NOW) == 0.0  # never cached under that variant


async def test_a_copy_stale_before_fresh_through_is_refreshed_early_when_a_fetch_would_last(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    """The nginx front's fills ask for a copy fresh through the current second (gateway/http/front_cache.py):
    a live copy (1 s) with 0.4 s left is fetched again; one that a fetch could not make last is not."""
    origin, prepare = Origin(serve(LIVE)), Preparer()
    cache = cache_for(client_for(origin))
    await cache.get(URL, "v", prepare, now=NOW + 0.2)  # fresh until NOW + 1.2
    await cache.get(URL, "v", prepare, now=NOW + 0.8, fresh_through=NOW + 1)  # lasts through NOW + 1: kept
    assert len(origin.requests) == 1
    await cache.get(URL, "v", prepare, now=NOW + 1.1, fresh_through=NOW + 2)  # 0.1 s left: refreshed early
    assert len(origin.requests) == 2 and cache.fresh_for(URL, "v", now=NOW + 1.1) == pytest.approx(1.0)
    await cache.get(URL, "v", prepare, now=NOW + 1.2, fresh_through=NOW + 5)  # no fetch lasts 3.8 s: kept
    assert len(origin.requests) == 2
    assert cache.peek(URL, "v") is not None and cache.peek(URL, "w") is None
    assert cache.peek(URL, "v") is cache.peek(URL, "v")  # stale or not, never a fetch
    assert len(origin.requests) == 2


async def test_no_store_means_every_request_asks_the_origin(client_for: Callable[[Origin], OriginClient]) -> None:
    origin, prepare = Origin(serve(VOD, {"cache-control": "no-store"})), Preparer()
    cache = cache_for(client_for(origin))
    for _ in range(3):
        await cache.get(URL, "v", prepare, now=NOW)
    assert len(origin.requests) == 3


# -- revalidation -----------------------------------------------------------------------------------------


async def test_a_304_keeps_the_prepared_template_and_renews_its_freshness(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    validators = {"etag": '"v1"', "last-modified": "Tue, 01 Jul 2025 00:00:00 GMT"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers=validators)
        return ok(VOD, validators)

    origin, prepare = Origin(answer), Preparer()
    cache = cache_for(client_for(origin))
    first = await cache.get(URL, "v", prepare, now=NOW)
    assert "if-none-match" not in origin.requests[0].headers
    revalidated = await cache.get(URL, "v", prepare, now=NOW + 60)
    assert revalidated is first and prepare.bodies == [VOD]  # not fetched whole, not prepared again
    conditional = origin.requests[1].headers
    assert conditional["if-none-match"] == '"v1"' and conditional["if-modified-since"] == validators["last-modified"]
    assert await cache.get(URL, "v", prepare, now=NOW + 119) is first  # fresh for another 60 s
    assert len(origin.requests) == 2

    changed = VOD.replace(b"seg.ts", b"seg2.ts")
    origin.answer = serve(changed, {"etag": '"v2"'})
    updated = await cache.get(URL, "v", prepare, now=NOW + 120)
    assert updated is not first and updated.chunks == (changed.decode(),) and prepare.bodies == [VOD, changed]
    await cache.get(URL, "v", prepare, now=NOW + 180)
    assert origin.requests[-1].headers["if-none-match"] == '"v2"'
    assert "if-modified-since" not in origin.requests[-1].headers  # validators are the latest answer's


async def test_without_validators_an_expired_entry_is_fetched_whole(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    origin, prepare = Origin(serve(VOD)), Preparer()
    cache = cache_for(client_for(origin))
    await cache.get(URL, "v", prepare, now=NOW)
    await cache.get(URL, "v", prepare, now=NOW + 60)
    assert not {"if-none-match", "if-modified-since"} & set(origin.requests[1].headers)
    assert prepare.bodies == [VOD, VOD]


# -- bounds -----------------------------------------------------------------------------------------------


async def test_the_least_recently_used_entry_is_evicted_beyond_max_entries(
    client_for: Callable[[Origin], OriginClient],
) -> None:
    origin, prepare = Origin(serve(VOD)), Preparer()
    cache = cache_for(client_for(origin), max_entries=3)
    urls = {name: f"http://origin.test/vod/{name}/index.m3u8" for name in "abcd"}
    for name in "abc":
        await cache.get(urls[name], "v", prepare, now=NOW)
    await cache.get(urls["a"], "v", prepare, now=NOW)  # a hit makes `a` the most recently used
    await cache.get(urls["d"], "v", prepare, now=NOW)  # a fourth entry: `b` goes
    assert cache.origin_fetches == 4
    for name in "acd":
        await cache.get(urls[name], "v", prepare, now=NOW)
    assert cache.origin_fetches == 4
    await cache.get(urls["b"], "v", prepare, now=NOW)
    assert cache.origin_fetches == 5 and [str(r.url) for r in origin.requests][-1] == urls["b"]


async def test_the_size_cap_is_the_caches(client_for: Callable[[Origin], OriginClient]) -> None:
    origin, prepare = Origin(serve(VOD)), Preparer()
    cache = cache_for(client_for(origin), max_bytes=len(VOD) - 1)
    with pytest.raises(ManifestTooLarge):
        await cache.get(URL, "v", prepare, now=NOW)
    assert prepare.bodies == []
