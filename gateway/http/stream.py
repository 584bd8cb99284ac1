"""Everything that is not a manifest: streamed from the origin as it arrives, never buffered.

Each stream holds one of its viewer's download slots (gateway/http/download_slots.py) and one connection of
the origin's segment pool from the origin's answer until the last byte is sent or the viewer goes away; the
response object gives both back however it ends (finished, aborted, cancelled before its first byte).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import OriginBadStatus
from gateway.http.access import Access
from gateway.http.download_slots import DownloadSlots
from gateway.http.media_types import content_type_for, is_key, is_manifest
from gateway.http.writers.base import PRIVATE
from gateway.origin.client import PASSTHROUGH_HEADERS, OriginClient, count_origin_error
from gateway.origin.segment_stream import OriginStreamBroken, SegmentStream, iterate

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


async def _open_upstream(origin: OriginClient, access: Access) -> SegmentStream:
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


def _relayed_headers(upstream: SegmentStream, access: Access) -> dict[str, str]:
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
    """A relayed origin answer, written as ASGI messages directly: each message carries everything that has
    arrived (up to the relay's 256 KiB), with no iterator or task group between the origin and the viewer
    (measured: scripts/bench_relay.py). It closes its upstream and gives its download slot back exactly
    once, however the response ends: finished, broken, stalled, or the viewer gone before the first byte."""

    def __init__(
        self,
        upstream: SegmentStream,
        release: Callable[[], None],
        *,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(iterate(upstream), status_code=status_code, headers=headers)
        self._upstream = upstream
        self._release: Callable[[], None] | None = release
        self._gone = False
        self._stalled = False
        self._sending_since: float | None = None
        self._stall_check: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        # uvicorn (ASGI 2.3) drops messages sent after the viewer left: the watcher notices, and stops the relay.
        watcher = loop.create_task(self._watch(receive))
        # One stall check per quarter of the limit, not a timeout around every message (measured: ~10% of a
        # segment's CPU): a send still pending after VIEWER_STALL_SECONDS cancels the response.
        self._stall_check = loop.call_later(VIEWER_STALL_SECONDS / 4, self._check_stall, loop, task)
        try:
            await self._send(
                loop, send, {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            upstream = self._upstream
            while True:
                try:
                    chunk = await upstream.read()
                except OriginStreamBroken as exc:
                    if self._gone:
                        return
                    log.warning("origin stream broke after headers: %s; aborting the response", exc)
                    count_origin_error("origin_stream_broken")
                    raise
                if self._gone:
                    return
                await self._send(loop, send, {"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
                if not chunk:
                    return
        except asyncio.CancelledError:
            if not self._stalled:
                raise
            task.uncancel()
            log.warning("viewer accepted no bytes for %s s; aborting the download", VIEWER_STALL_SECONDS)
            raise ViewerStalled from None
        finally:
            if self._stall_check is not None:
                self._stall_check.cancel()
            watcher.cancel()
            await self.close_upstream()

    async def _send(self, loop: asyncio.AbstractEventLoop, send: Send, message: Message) -> None:
        self._sending_since = loop.time()
        await send(message)
        self._sending_since = None

    def _check_stall(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
        since = self._sending_since
        if since is not None and loop.time() - since >= VIEWER_STALL_SECONDS:
            self._stalled = True
            task.cancel()
            return
        delay = VIEWER_STALL_SECONDS / 4 if since is None else since + VIEWER_STALL_SECONDS - loop.time()
        self._stall_check = loop.call_later(delay, self._check_stall, loop, task)

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        self._upstream.abort()

    async def close_upstream(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            try:
                await self._upstream.aclose()
            finally:
                release()


class ViewerStalled(Exception):
    """A viewer that takes no bytes for VIEWER_STALL_SECONDS: its download is aborted, so a reader that never
    reads (or a dead one whose connection never closes) does not hold its slot and origin connection forever."""
