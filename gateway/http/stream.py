"""Everything that is not a manifest: streamed from the origin as it arrives, never buffered.

Each stream holds one of its viewer's download slots (gateway/http/download_slots.py) and one connection of
the origin's segment pool from the origin's answer until the last byte is sent or the viewer goes away; the
response object gives both back however it ends (finished, aborted, cancelled before its first byte).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable

import httpx
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import OriginBadStatus
from gateway.http.access import Access
from gateway.http.download_slots import DownloadSlots
from gateway.http.media_types import content_type_for, is_key, is_manifest
from gateway.http.writers.base import PRIVATE
from gateway.origin.client import PASSTHROUGH_HEADERS, OriginClient, count_origin_error

log = logging.getLogger("gateway.http.stream")

# Conditional and range requests pass through, so players get 206/304 from the origin itself.
# The player's own Accept-Encoding too: the origin's Content-Encoding is passed back with the raw bytes, so
# the origin must only compress what the player accepts (httpx would otherwise offer gzip on its behalf).
# A viewer that accepts no byte of a download for this long is not watching it (a player on a slow link still
# drains its socket); the download is aborted and its slot and origin connection given back.
VIEWER_STALL_SECONDS = 30.0

FORWARDED_REQUEST_HEADERS = (b"range", b"if-range", b"if-none-match", b"if-modified-since", b"accept-encoding")


async def stream_from_origin(origin: OriginClient, access: Access, slots: DownloadSlots, viewer: str) -> Response:
    """The origin's answer for `access`, relayed; an origin error status is raised as `origin_status`.

    `viewer` holds one of `slots` while the stream is open (TooManyDownloads when it has none left)."""
    slots.take(viewer)
    try:
        upstream = await _open_upstream(origin, access)
    except BaseException:
        slots.give_back(viewer)
        raise
    headers = _relayed_headers(upstream, access)
    if access.head:  # the origin's headers (its Content-Length included), no body: nothing stays open
        await upstream.aclose()
        slots.give_back(viewer)
        return Response(b"", status_code=upstream.status_code, headers=headers)
    release = functools.partial(slots.give_back, viewer)
    return OriginStreamResponse(upstream, release, status_code=upstream.status_code, headers=headers)


async def _open_upstream(origin: OriginClient, access: Access) -> httpx.Response:
    origin_url = access.origin_url
    forwarded = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in access.incoming.scope.get("headers", ())
        if key in FORWARDED_REQUEST_HEADERS
    }
    forwarded.setdefault("accept-encoding", "identity")
    upstream = await origin.send_stream(origin_url, forwarded)
    if upstream.status_code >= 400 and upstream.status_code != 416:
        await upstream.aclose()
        count_origin_error(OriginBadStatus.code)
        raise OriginBadStatus(
            f"origin answered {upstream.status_code} for {origin_url.split('?')[0]}", upstream.status_code
        )
    return upstream


def _relayed_headers(upstream: httpx.Response, access: Access) -> dict[str, str]:
    path = access.resource.decoded
    headers = {name: upstream.headers[name] for name in PASSTHROUGH_HEADERS if name in upstream.headers}
    if 300 <= upstream.status_code < 400 and "location" in upstream.headers:
        headers["location"] = upstream.headers["location"]  # the origin's redirect, as the player needs it
    headers["content-type"] = content_type_for(path, upstream.headers.get("content-type"))
    headers["x-content-type-options"] = "nosniff"
    if is_key(path) or is_manifest(path):
        headers["cache-control"] = PRIVATE
    return headers


class OriginStreamResponse(StreamingResponse):
    """A relayed origin answer that closes its upstream and gives its download slot back exactly once, however
    the response ends: a generator's `finally` would not run when the viewer leaves before the first chunk."""

    def __init__(
        self,
        upstream: httpx.Response,
        release: Callable[[], None],
        *,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(_relay(upstream), status_code=status_code, headers=headers)
        self._upstream = upstream
        self._release: Callable[[], None] | None = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_or_give_up(message: Message) -> None:
            try:
                async with asyncio.timeout(VIEWER_STALL_SECONDS):  # no task per chunk, unlike wait_for
                    await send(message)
            except TimeoutError:
                log.warning("viewer accepted no bytes for %s s; aborting the download", VIEWER_STALL_SECONDS)
                raise ViewerStalled from None

        try:
            await super().__call__(scope, receive, send_or_give_up)
        finally:
            await self.close_upstream()

    async def close_upstream(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            try:
                await self._upstream.aclose()
            finally:
                release()


class OriginStreamBroken(Exception):
    """Raised inside a streaming response: uvicorn then aborts the connection instead of ending the body."""


class ViewerStalled(Exception):
    """A viewer that takes no bytes for VIEWER_STALL_SECONDS: its download is aborted, so a reader that never
    reads (or a dead one whose connection never closes) does not hold its slot and origin connection forever."""


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """Pass origin bytes through as they arrive. An origin that breaks mid-body aborts the response: ending
    it cleanly (the last chunk of a chunked body) would pass a truncated segment off as whole, and a CDN in
    front would cache it."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("origin stream broke after headers: %s; aborting the response", type(exc).__name__)
        count_origin_error("origin_stream_broken")
        raise OriginStreamBroken(type(exc).__name__) from None
