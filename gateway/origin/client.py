"""The one place the gateway talks to origins: pooled httpx clients with timeouts and typed errors.

Only URLs built from configured routes reach this module, so the gateway is never an open proxy.
Manifests are read whole (with a size cap); segments are streamed through without buffering. Each has its
own bounded pool: a segment stream lasts as long as its viewer takes to read it, and a crowd of slow
readers must never leave playlists (every viewer's next reload) waiting for a connection. A wait for a
pooled connection that outlasts `pool_wait_seconds` is `503 origin_busy`, an overload answer players retry.
"""

from __future__ import annotations

import http.cookiejar
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import Histogram

from gateway.config import OriginSettings
from gateway.errors import (
    ManifestTooLarge,
    OriginBadStatus,
    OriginBusy,
    OriginError,
    OriginTimeout,
    OriginUnavailable,
)
from gateway.origin.auth import HEADER, origin_auth_header
from gateway.origin.relay import RelayPool
from gateway.origin.segment_pool import SegmentPool, shard_sizes
from gateway.origin.segment_stream import HttpxSegmentStream, SegmentStream
from gateway.telemetry.metrics import ORIGIN_ERRORS, ORIGIN_MANIFEST_SECONDS, ORIGIN_SEGMENT_SECONDS

# Headers worth passing through from the origin on segment responses.
PASSTHROUGH_HEADERS = (
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "cache-control",
    "content-encoding",
)


@dataclass(frozen=True, slots=True)
class ManifestFetch:
    status: int  # 200, or 304 when a conditional request found it unchanged
    body: bytes
    headers: Mapping[str, str]


def _timeout_message(url: str, exc: httpx.TimeoutException) -> str:
    kind = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
    return f"origin timed out {kind} {redact_url(url)}"


def redact_url(url: str) -> str:
    """Origin URLs in messages lose their query (it may carry upstream credentials)."""
    return url.split("?", 1)[0]


def count_origin_error(kind: str) -> None:
    """`gateway_origin_errors_total{kind}`: one per failed origin request (not per viewer waiting on it)."""
    ORIGIN_ERRORS.labels(kind).inc()


@asynccontextmanager
async def _translate_errors(url: str, latency: Histogram | None = None, *, counted: bool = True) -> AsyncIterator[None]:
    """httpx's failures as the typed origin errors, counted unless `counted` is false (a readiness probe is
    not a viewer's request); `latency` observes a request that succeeded."""
    started = time.perf_counter()
    try:
        try:
            yield
        except httpx.PoolTimeout as exc:
            raise OriginBusy(f"every origin connection stayed busy; not fetching {redact_url(url)}") from exc
        except httpx.TimeoutException as exc:
            raise OriginTimeout(_timeout_message(url, exc)) from exc
        except httpx.TransportError as exc:
            raise OriginUnavailable(f"origin unreachable at {redact_url(url)}: {type(exc).__name__}") from exc
    except OriginError as exc:
        if counted:
            count_origin_error(exc.code)
        raise
    if latency is not None:
        latency.observe(time.perf_counter() - started)


class _OriginAuth(httpx.Auth):
    """Adds the authenticated origin header (gateway/origin/auth.py) to every origin request."""

    def __init__(self, secret: bytes, clock: Callable[[], float]) -> None:
        self._secret = secret
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers[HEADER] = origin_auth_header(
            self._secret, method=request.method, target=target, now=self._clock()
        )
        yield request


class _NoCookies(http.cookiejar.CookieJar):
    """The gateway never uses an origin's cookies: skip httpx's per-response cookie extraction."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


class _RetryStaleConnection(httpx.AsyncBaseTransport):
    """Sends a GET again, once, when its connection died before any answer came back.

    An origin closes an idle keep-alive connection when its own timer runs out (uvicorn and Apache after 5 s,
    nginx after 75 s); a request sent on it in that instant meets a closed socket: no status line, nothing
    read. Nothing was received, and GET is idempotent, so one more try on a fresh connection is what every
    browser does; a failure after the status line (a broken body) is never retried (`OriginStreamBroken`)."""

    _STALE = (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except self._STALE:
            if request.method not in ("GET", "HEAD"):
                raise
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class OriginClient:
    """Two pools, created once per app (lifespan) and reused: an `httpx.AsyncClient` for manifests and the
    gateway's own relay for segments (gateway/origin/relay.py: measured there, several times faster). An
    injected httpx `transport` (an in-process origin in tests, the QA replay) serves both."""

    def __init__(
        self,
        settings: OriginSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._manifests = _pooled(settings, settings.manifest_connections, transport, clock)
        self._relay: RelayPool | None = None
        self._segments: SegmentPool | None = None
        if transport is None:
            self._relay = RelayPool(settings, clock)
        else:
            sizes = shard_sizes(settings.segment_connections)
            clients = [_pooled(settings, size, transport, clock) for size in sizes]
            self._segments = SegmentPool(clients, sizes, settings.pool_wait_seconds)

    async def aclose(self) -> None:
        await self._manifests.aclose()
        for pool in (self._relay, self._segments):
            if pool is not None:
                await pool.aclose()

    async def fetch_manifest(
        self, url: str, *, max_bytes: int, conditional: Mapping[str, str] | None = None
    ) -> ManifestFetch:
        """GET a manifest whole, refusing more than `max_bytes`; 304 is returned as is for revalidation."""
        # Identity: the rewriter needs the playlist's bytes, and the cap must count them. httpx would offer
        # gzip, and an origin that compresses playlists (nginx `gzip_types`, most CDNs) would take it.
        headers = {"accept-encoding": "identity", **(conditional or {})}
        async with (
            _translate_errors(url, ORIGIN_MANIFEST_SECONDS),
            self._manifests.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 304:
                return ManifestFetch(304, b"", dict(response.headers))
            if response.status_code != 200:
                raise OriginBadStatus(
                    f"origin answered {response.status_code} for {redact_url(url)}", response.status_code
                )
            # An origin that compresses anyway is decoded (gzip, deflate), and the cap counts decoded bytes.
            encoded = response.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")
            declared = response.headers.get("content-length")
            if not encoded and declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ManifestTooLarge(f"origin manifest is {declared} bytes, over the {max_bytes}-byte limit")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes() if encoded else response.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise ManifestTooLarge(f"origin manifest exceeds the {max_bytes}-byte limit")
                chunks.append(chunk)
            return ManifestFetch(200, b"".join(chunks), dict(response.headers))

    async def send_stream(self, url: str, headers: Mapping[str, str]) -> SegmentStream:
        """Start a streamed GET with exactly `headers` (and the origin header). The caller must `aclose()` it."""
        async with _translate_errors(url, ORIGIN_SEGMENT_SECONDS):  # the relay raises typed errors: counted
            if self._relay is not None:
                return await self._relay.open(url, headers)
            assert self._segments is not None
            return HttpxSegmentStream(await self._segments.send(url, dict(headers)))

    async def probe(self, url: str, *, timeout: float) -> None:
        """HEAD `url` on the manifest pool within `timeout`: any answer means the origin is reachable (for
        `/readyz`); a failure raises the typed origin error."""
        async with _translate_errors(url, counted=False):
            response = await self._manifests.request("HEAD", url, timeout=timeout)
        await response.aclose()


def _pooled(
    settings: OriginSettings,
    connections: int,
    transport: httpx.AsyncBaseTransport | None,
    clock: Callable[[], float],
) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_seconds,
        read=settings.read_timeout_seconds,
        write=settings.read_timeout_seconds,
        pool=settings.pool_wait_seconds,
    )
    if transport is None:
        transport = httpx.AsyncHTTPTransport(
            # Idle connections are kept up to the pool size: re-connecting to the origin under load costs more.
            # They are given up after 4 s, before the shortest common server keep-alive (5 s) closes them.
            limits=httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=4.0
            ),
            trust_env=False,
        )
    return httpx.AsyncClient(
        timeout=timeout,
        transport=_RetryStaleConnection(transport),
        follow_redirects=False,
        trust_env=False,
        cookies=_NoCookies(),
        auth=_OriginAuth(settings.auth_secret, clock) if settings.auth_secret else None,
    )


__all__ = ["PASSTHROUGH_HEADERS", "ManifestFetch", "OriginClient", "OriginError"]
