"""A segment being relayed from the origin, as the edge sees it, whichever client fetched it.

The gateway's own relay (gateway/origin/relay.py) serves every configured origin; the httpx one serves an
injected httpx transport (the tests' in-process origins, the QA replay), through the same interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import httpx


class OriginStreamBroken(Exception):
    """The origin's body broke after its headers (reset, timeout, bad framing): the response to the viewer
    must be aborted, never ended cleanly, so a truncated segment is not passed off as whole."""


class SegmentStream(Protocol):
    """An origin answer whose headers have arrived and whose body is read as it comes."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:  # lower-case names
        ...

    async def read(self) -> bytes:
        """The body's next bytes (all that have arrived, bounded), b"" at its end; OriginStreamBroken."""
        ...

    def abort(self) -> None:
        """The viewer left: stop a pending `read` as soon as possible (it then raises OriginStreamBroken)."""
        ...

    async def aclose(self) -> None:
        """Give the connection back (or drop it); idempotent."""
        ...


async def iterate(stream: SegmentStream) -> AsyncIterator[bytes]:
    """Every chunk of `stream`'s body (for callers that want an iterator)."""
    while chunk := await stream.read():
        yield chunk


class HttpxSegmentStream:
    """A streamed `httpx.Response` as a SegmentStream."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.aiter_raw()

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self) -> bytes:
        try:
            while not (chunk := await anext(self._chunks)):
                pass
        except StopAsyncIteration:
            return b""
        except httpx.HTTPError as exc:
            raise OriginStreamBroken(type(exc).__name__) from None
        return chunk

    def abort(self) -> None:
        return None  # the next `read` returns as the in-process origin answers; nothing to interrupt

    async def aclose(self) -> None:
        await self._response.aclose()
