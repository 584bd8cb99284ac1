"""Everything that is not a manifest: streamed from the origin as it arrives, never buffered."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
from starlette.responses import Response, StreamingResponse

from gateway.errors import OriginBadStatus
from gateway.http.access import Access
from gateway.http.media_types import content_type_for, is_key, is_manifest
from gateway.http.writers.base import PRIVATE
from gateway.origin.client import PASSTHROUGH_HEADERS, OriginClient

log = logging.getLogger("gateway.http.stream")

# Conditional and range requests pass through, so players get 206/304 from the origin itself.
# The player's own Accept-Encoding too: the origin's Content-Encoding is passed back with the raw bytes, so
# the origin must only compress what the player accepts (httpx would otherwise offer gzip on its behalf).
FORWARDED_REQUEST_HEADERS = (b"range", b"if-range", b"if-none-match", b"if-modified-since", b"accept-encoding")


async def stream_from_origin(origin: OriginClient, access: Access) -> Response:
    """The origin's answer for `access`, relayed; an origin error status is raised as `origin_status`."""
    origin_url, path = access.origin_url, access.resource.decoded
    forwarded = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in access.incoming.scope.get("headers", ())
        if key in FORWARDED_REQUEST_HEADERS
    }
    forwarded.setdefault("accept-encoding", "identity")
    upstream = await origin.send_stream(origin_url, forwarded)
    if upstream.status_code >= 400 and upstream.status_code != 416:
        await upstream.aclose()
        raise OriginBadStatus(
            f"origin answered {upstream.status_code} for {origin_url.split('?')[0]}", upstream.status_code
        )
    headers = {name: upstream.headers[name] for name in PASSTHROUGH_HEADERS if name in upstream.headers}
    if 300 <= upstream.status_code < 400 and "location" in upstream.headers:
        headers["location"] = upstream.headers["location"]  # the origin's redirect, as the player needs it
    headers["content-type"] = content_type_for(path, upstream.headers.get("content-type"))
    headers["x-content-type-options"] = "nosniff"
    if is_key(path) or is_manifest(path):
        headers["cache-control"] = PRIVATE
    if access.head:
        await upstream.aclose()
        return Response(b"", status_code=upstream.status_code, headers=headers)
    return StreamingResponse(_relay(upstream), status_code=upstream.status_code, headers=headers)


class OriginStreamBroken(Exception):
    """Raised inside a streaming response: uvicorn then aborts the connection instead of ending the body."""


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """Pass origin bytes through as they arrive. An origin that breaks mid-body aborts the response: ending
    it cleanly (the last chunk of a chunked body) would pass a truncated segment off as whole, and a CDN in
    front would cache it."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("origin stream broke after headers: %s; aborting the response", type(exc).__name__)
        raise OriginStreamBroken(type(exc).__name__) from None
    finally:
        await upstream.aclose()
