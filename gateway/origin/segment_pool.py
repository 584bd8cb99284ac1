"""Segments over an injected httpx transport (in-process origins in tests, the QA replay); every configured
origin is served by the gateway's own relay (relay.py) instead.

Many origin connections without httpcore's per-request cost growing with them:

httpcore re-examines its whole pool on every request and every release, in time proportional to queued
requests × connections (and idle connections squared). Measured here: one 256-connection pool under a burst
of 500 segment downloads spent so long in that bookkeeping that its own connects "timed out" (hundreds of
504s from a gateway whose origin, nginx, accepted in 20 ms). So the pool is split into shards of
`SHARD_CONNECTIONS`, and admission happens here, before httpx: a FIFO semaphore over all connections, waited
on for at most `pool_wait_seconds` (then `503 origin_busy`), and the least-busy shard gets the request. A
shard never has more requests than connections, so httpcore never queues and its bookkeeping stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import httpx

from gateway.errors import OriginBusy

SHARD_CONNECTIONS = 32


def shard_sizes(connections: int) -> list[int]:
    """`connections` split into shards of at most SHARD_CONNECTIONS, as even as possible."""
    shards = -(-connections // SHARD_CONNECTIONS)
    base, extra = divmod(connections, shards)
    return [base + 1 if index < extra else base for index in range(shards)]


class _Releasing(httpx.AsyncByteStream):
    """A response body stream that gives its admission back exactly once, when the response is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class SegmentPool:
    """Streamed GETs over sharded httpx clients, admitted up to their total connections."""

    def __init__(self, clients: Sequence[httpx.AsyncClient], sizes: Sequence[int], pool_wait_seconds: float) -> None:
        self._clients = list(clients)
        self._busy = [0] * len(clients)
        self._admission = asyncio.Semaphore(sum(sizes))
        self._sizes = list(sizes)
        self._pool_wait = pool_wait_seconds

    async def send(self, url: str, headers: dict[str, str] | None) -> httpx.Response:
        """Start a streamed GET; the response must be closed (`aclose()`), which frees its admission."""
        try:
            async with asyncio.timeout(self._pool_wait):
                await self._admission.acquire()
        except TimeoutError:
            raise OriginBusy(f"every origin connection stayed busy for {self._pool_wait} s") from None
        shard = min(range(len(self._clients)), key=lambda index: self._busy[index] / self._sizes[index])
        self._busy[shard] += 1

        def release() -> None:
            self._busy[shard] -= 1
            self._admission.release()

        try:
            client = self._clients[shard]
            response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
        except BaseException:
            release()
            raise
        response.stream = _Releasing(response.stream, release)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
