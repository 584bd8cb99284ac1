"""The origin client (gateway/origin/client.py) against real HTTP servers on 127.0.0.1.

Every origin failure becomes a typed error (timeouts 504, the rest 502) whose message never carries the
origin URL's query; manifests are read whole under a size cap, segments stream through; no cookie jar,
no proxy from the environment, no redirects; the only headers sent are those the caller gives, httpx's
fixed ones and, with a secret, the authenticated origin header.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import http.server
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.config import OriginSettings
from gateway.errors import ManifestTooLarge, OriginBadStatus, OriginBusy, OriginError, OriginTimeout, OriginUnavailable
from gateway.origin.auth import HEADER, verify_origin_auth
from gateway.origin.client import OriginClient
from gateway.origin.segment_stream import iterate
from tests.support.servers import OriginRequest, free_port, scripted_origin, unaccepting_port

PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg_000.ts\n#EXT-X-ENDLIST\n"
SECRET_QUERY = "?sig=upstream-credential"
# What httpx itself sends on every request; anything else must come from the caller (or the auth header).
HTTPX_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent"}
SLOW = 5.0  # how long a held origin waits before giving up on a test (far beyond every timeout used)
Handler = http.server.BaseHTTPRequestHandler


def reply(
    handler: Handler,
    body: bytes = PLAYLIST,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if chunked:
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        if body:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
        handler.wfile.write(b"0\r\n\r\n")
    else:
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def always(**kwargs: object) -> Callable[[OriginRequest, Handler], None]:
    def respond(_: OriginRequest, handler: Handler) -> None:
        reply(handler, **kwargs)  # type: ignore[arg-type]

    return respond


@asynccontextmanager
async def origin_client(clock: Callable[[], float] = time.time, **changes: object) -> AsyncIterator[OriginClient]:
    client = OriginClient(dataclasses.replace(OriginSettings(), **changes), clock=clock)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.aclose()


# -- manifests --------------------------------------------------------------------------------------------


async def test_a_manifest_is_read_whole_with_the_origins_headers() -> None:
    with scripted_origin(always(headers={"etag": '"v1"', "cache-control": "max-age=7"})) as (url, seen):
        async with origin_client() as client:
            fetched = await client.fetch_manifest(url + "vod/t/index.m3u8", max_bytes=len(PLAYLIST))
    assert (fetched.status, fetched.body) == (200, PLAYLIST)
    assert fetched.headers["etag"] == '"v1"' and fetched.headers["cache-control"] == "max-age=7"
    assert [request.target for request in seen] == ["/vod/t/index.m3u8"]


async def test_a_conditional_request_sends_the_validators_and_returns_304_as_is() -> None:
    def respond(request: OriginRequest, handler: Handler) -> None:
        if request.headers.get("if-none-match") == '"v1"':
            reply(handler, b"", 304, {"etag": '"v1"'})
        else:
            reply(handler, headers={"etag": '"v1"'})

    with scripted_origin(respond) as (url, seen):
        async with origin_client() as client:
            first = await client.fetch_manifest(url + "index.m3u8", max_bytes=1 << 20)
            again = await client.fetch_manifest(
                url + "index.m3u8", max_bytes=1 << 20, conditional={"if-none-match": first.headers["etag"]}
            )
    assert (first.status, again.status, again.body) == (200, 304, b"")
    assert "if-none-match" not in seen[0].headers and seen[1].headers["if-none-match"] == '"v1"'


async def test_manifests_are_asked_for_unencoded_and_decoded_if_the_origin_compresses_anyway() -> None:
    """An origin that compresses playlists (nginx `gzip_types`, CDNs) must not hand the rewriter gzip bytes."""

    playlist = b"#EXTM3U\n" + b"".join(b"#EXTINF:2,\nseg_%03d.ts\n" % index for index in range(300))
    compressed = gzip.compress(playlist)
    assert len(compressed) < len(playlist) // 5

    def respond(request: OriginRequest, handler: Handler) -> None:
        reply(handler, compressed, headers={"content-encoding": "gzip"})  # whatever the request said

    with scripted_origin(respond) as (url, seen):
        async with origin_client() as client:
            fetched = await client.fetch_manifest(url + "index.m3u8", max_bytes=len(playlist))
            with pytest.raises(ManifestTooLarge):  # the cap counts what the rewriter would get
                await client.fetch_manifest(url + "index.m3u8", max_bytes=len(playlist) - 1)
    assert fetched.body == playlist
    assert seen[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("status", [404, 403, 500, 503, 302, 206])
async def test_any_answer_but_200_or_304_is_a_bad_status_naming_the_path_only(status: int) -> None:
    headers = {"location": "/elsewhere.m3u8"} if status == 302 else {}
    with scripted_origin(always(status=status, headers=headers)) as (url, seen):
        async with origin_client() as client:
            with pytest.raises(OriginBadStatus) as info:
                await client.fetch_manifest(url + "vod/t/index.m3u8" + SECRET_QUERY, max_bytes=1 << 20)
    assert info.value.origin_status == status and info.value.status == (404 if status == 404 else 502)
    assert f"{status}" in str(info.value) and "/vod/t/index.m3u8" in str(info.value)
    assert "sig=" not in str(info.value)
    assert len(seen) == 1  # a redirect is never followed: the gateway only fetches configured origins


async def test_a_declared_length_over_the_cap_is_refused_before_the_body_arrives() -> None:
    released = threading.Event()

    def respond(_: OriginRequest, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "1001")
        handler.end_headers()
        handler.wfile.flush()
        released.wait(SLOW)  # the body never comes while the client waits

    with scripted_origin(respond) as (url, _):
        try:
            async with origin_client() as client:
                started = time.monotonic()
                with pytest.raises(ManifestTooLarge, match="1001 bytes, over the 1000-byte limit"):
                    await client.fetch_manifest(url + "big.m3u8", max_bytes=1000)
                assert time.monotonic() - started < SLOW / 2
        finally:
            released.set()


async def test_an_undeclared_body_over_the_cap_is_refused_as_it_streams_in() -> None:
    released = threading.Event()

    def respond(_: OriginRequest, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for _chunk in range(2):  # 1200 bytes, then the origin stalls: the client must not wait for the rest
            handler.wfile.write(b"258\r\n" + b"#" * 600 + b"\r\n")
        handler.wfile.flush()
        released.wait(SLOW)

    with scripted_origin(respond) as (url, _):
        try:
            async with origin_client() as client:
                started = time.monotonic()
                with pytest.raises(ManifestTooLarge, match="exceeds the 1000-byte limit"):
                    await client.fetch_manifest(url + "big.m3u8", max_bytes=1000)
                assert time.monotonic() - started < SLOW / 2
        finally:
            released.set()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_manifest_of_exactly_the_cap_is_accepted(chunked: bool) -> None:
    with scripted_origin(always(chunked=chunked)) as (url, _):
        async with origin_client() as client:
            fetched = await client.fetch_manifest(url + "index.m3u8", max_bytes=len(PLAYLIST))
    assert fetched.body == PLAYLIST


# -- timeouts and unreachable origins ---------------------------------------------------------------------


async def test_an_origin_that_answers_nothing_is_a_read_timeout() -> None:
    released = threading.Event()

    def respond(_: OriginRequest, handler: Handler) -> None:
        released.wait(SLOW)

    with scripted_origin(respond) as (url, _):
        try:
            async with origin_client(read_timeout_seconds=0.3) as client:
                for attempt in (
                    client.fetch_manifest(url + "vod/t/index.m3u8" + SECRET_QUERY, max_bytes=1 << 20),
                    client.send_stream(url + "vod/t/seg.ts" + SECRET_QUERY, {}),
                ):
                    started = time.monotonic()
                    with pytest.raises(OriginTimeout) as info:
                        await attempt
                    assert 0.25 < time.monotonic() - started < SLOW / 2
                    assert str(info.value).startswith("origin timed out waiting for http://127.0.0.1:")
                    assert "sig=" not in str(info.value) and info.value.status == 504
        finally:
            released.set()


async def test_an_origin_that_never_accepts_is_a_connect_timeout() -> None:
    with unaccepting_port() as port:
        async with origin_client(connect_timeout_seconds=0.3) as client:
            started = time.monotonic()
            with pytest.raises(OriginTimeout, match=r"^origin timed out connecting to http://127\.0\.0\.1:"):
                await client.fetch_manifest(f"http://127.0.0.1:{port}/index.m3u8", max_bytes=1 << 20)
            assert time.monotonic() - started < SLOW / 2


async def test_a_closed_port_is_unavailable_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}/vod/t/seg.ts{SECRET_QUERY}"
    async with origin_client() as client:
        for attempt in (client.fetch_manifest(url, max_bytes=1 << 20), client.send_stream(url, {})):
            with pytest.raises(OriginUnavailable, match=r"^origin unreachable at http://127\.0\.0\.1:") as info:
                await attempt
            assert "sig=" not in str(info.value) and info.value.status == 502
            assert isinstance(info.value, OriginError)


async def test_the_segment_pool_is_bounded_and_a_wait_for_it_ends_in_origin_busy() -> None:
    with scripted_origin(always(body=b"x" * 10)) as (url, _):
        async with origin_client(segment_connections=1, pool_wait_seconds=0.3) as client:
            held = await client.send_stream(url + "a.ts", {})  # not read yet: holds the only connection
            with pytest.raises(OriginBusy, match="every origin connection stayed busy") as busy:
                await client.send_stream(url + "b.ts?sig=secret", {})
            assert busy.value.status == 503 and busy.value.retry_after == 1 and "sig=" not in str(busy.value)
            manifest = await client.fetch_manifest(url + "p.m3u8", max_bytes=1 << 20)  # its own pool
            assert manifest.status == 200
            await held.aclose()
            after = await client.send_stream(url + "c.ts", {})
            assert after.status_code == 200
            await after.aclose()


# -- segments ---------------------------------------------------------------------------------------------


async def test_a_segment_streams_through_before_the_origin_has_sent_it_whole() -> None:
    released = threading.Event()
    half = b"\x47" * 65536

    def respond(_: OriginRequest, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", str(2 * len(half)))
        handler.end_headers()
        handler.wfile.write(half)
        handler.wfile.flush()
        released.wait(SLOW)
        handler.wfile.write(half)

    with scripted_origin(respond) as (url, _):
        try:
            async with origin_client() as client:
                response = await client.send_stream(url + "seg.ts", {})
                received = 0
                async for chunk in iterate(response):
                    received += len(chunk)
                    if received == len(half):
                        assert not released.is_set()  # the first half is here; the origin holds the rest
                        released.set()
                await response.aclose()
        finally:
            released.set()
    assert received == 2 * len(half)


def closes_reused_connections(body: bytes = PLAYLIST) -> Callable[[OriginRequest, Handler], None]:
    """An origin whose keep-alive timer fires as a second request arrives on a connection: the first request
    of every connection is answered (keep-alive), the next one meets a closed socket, nothing written."""

    def respond(_: OriginRequest, handler: Handler) -> None:
        # One handler per connection; marked on the handler itself (an id() is reused once a handler is freed).
        if getattr(handler, "answered_once", False):
            handler.close_connection = True
            return
        handler.answered_once = True  # type: ignore[attr-defined]
        reply(handler, body)

    return respond


async def test_a_request_on_a_connection_the_origin_just_closed_is_sent_again_on_a_fresh_one() -> None:
    # Without the retry the second request of each kind is `502 origin_unavailable` (RemoteProtocolError):
    # what a 30-minute soak against uvicorn's 5 s keep-alive showed, 4 times in 36,000 segments.
    with scripted_origin(closes_reused_connections()) as (url, seen):
        async with origin_client() as client:
            for _ in range(3):
                fetched = await client.fetch_manifest(url + "index.m3u8", max_bytes=1 << 20)
                assert fetched.body == PLAYLIST
                response = await client.send_stream(url + "seg.ts", {})
                assert [chunk async for chunk in iterate(response)] == [PLAYLIST]
                await response.aclose()
    assert len(seen) == 10  # 6 answered + 4 that met a closed connection (the first of each pool was fresh)


async def test_the_retry_takes_a_fresh_connection_when_every_idle_one_is_dead() -> None:
    # After an origin restart every idle connection is closed: retrying on the next idle one would fail too.
    with scripted_origin(closes_reused_connections()) as (url, seen):
        async with origin_client() as client:
            first, second = [await client.send_stream(url + "seg.ts", {}) for _ in range(2)]  # two connections
            for response in (first, second):
                assert [chunk async for chunk in iterate(response)] == [PLAYLIST]
                await response.aclose()
            third = await client.send_stream(url + "seg.ts", {})  # both idle ones are dead now
            assert [chunk async for chunk in iterate(third)] == [PLAYLIST]
            await third.aclose()
    assert len(seen) == 4  # two answered, one that met a dead connection, one answered on a fresh one


async def test_a_connection_that_breaks_again_on_the_retry_is_unavailable() -> None:
    def never(_: OriginRequest, handler: Handler) -> None:
        handler.close_connection = True

    with scripted_origin(never) as (url, seen):
        async with origin_client() as client:
            with pytest.raises(OriginUnavailable):
                await client.fetch_manifest(url + "index.m3u8", max_bytes=1 << 20)
    assert len(seen) == 2  # one try and one retry, no more


async def test_a_stream_sends_exactly_the_headers_it_is_given() -> None:
    given = {"range": "bytes=0-99", "if-range": '"v1"', "if-none-match": '"v0"', "if-modified-since": "x"}
    with scripted_origin(always(status=206, body=b"y" * 100)) as (url, seen):
        async with origin_client() as client:
            response = await client.send_stream(url + "seg.ts?_HLS_msn=3", given)
            assert response.status_code == 206  # passed back as is: the edge decides what it means
            await response.aclose()
    received = seen[0].headers
    assert {name: received[name] for name in given} == given
    assert set(received) <= HTTPX_HEADERS | set(given)  # no cookie, authorization, forwarded-for, ...
    assert seen[0].target == "/seg.ts?_HLS_msn=3"


async def test_origin_cookies_are_never_kept_or_sent_back() -> None:
    cookie = {"set-cookie": "origin_session=viewer-a; Path=/"}
    with scripted_origin(always(headers=cookie)) as (url, seen):
        async with origin_client() as client:
            await client.fetch_manifest(url + "index.m3u8", max_bytes=1 << 20)
            response = await client.send_stream(url + "seg.ts", {})
            assert [chunk async for chunk in iterate(response)] == [PLAYLIST]
            await response.aclose()
            await client.fetch_manifest(url + "index.m3u8", max_bytes=1 << 20)
    assert len(seen) == 3 and all("cookie" not in request.headers for request in seen)


async def test_proxy_settings_in_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with scripted_origin(always()) as (url, seen):
        async with origin_client() as client:
            fetched = await client.fetch_manifest(url + "index.m3u8", max_bytes=1 << 20)
    assert fetched.body == PLAYLIST and len(seen) == 1


# -- the authenticated origin header ----------------------------------------------------------------------


async def test_with_a_secret_every_request_carries_a_header_for_its_exact_target() -> None:
    secret, now = b"origin-secret-0123456789abcdef", 1_800_000_000.0
    with scripted_origin(always()) as (url, seen):
        async with origin_client(clock=lambda: now, auth_secret=secret) as client:
            await client.fetch_manifest(url + "vod/t/index.m3u8?v=2", max_bytes=1 << 20)
            response = await client.send_stream(url + "vod/t/seg%20one.ts", {"range": "bytes=0-1"})
            await response.aclose()
        async with origin_client() as unsigned:
            await unsigned.fetch_manifest(url + "vod/t/index.m3u8", max_bytes=1 << 20)
    manifest, segment, without = seen
    for request in (manifest, segment):
        value = request.headers[HEADER]
        assert value.startswith(f"t={int(now)};sig=")
        assert verify_origin_auth(value, secret, method="GET", target=request.target, now=now)
        assert not verify_origin_auth(value, secret, method="GET", target="/vod/t/other.ts", now=now)
    assert segment.target == "/vod/t/seg%20one.ts"  # signed as sent, percent-encoding included
    assert HEADER not in without.headers


async def test_requests_in_flight_do_not_share_state() -> None:
    """Concurrent manifests on one pooled client each get their own body (no cross-talk on reuse)."""

    def respond(request: OriginRequest, handler: Handler) -> None:
        reply(handler, request.target.encode() * 50)

    with scripted_origin(respond) as (url, _):
        async with origin_client(manifest_connections=4) as client:
            targets = [f"/p{index}.m3u8" for index in range(20)]
            results = await asyncio.gather(*(client.fetch_manifest(url + t[1:], max_bytes=1 << 20) for t in targets))
    assert [result.body for result in results] == [t.encode() * 50 for t in targets]
