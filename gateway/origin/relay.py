"""The segment relay: origin bytes to the viewer over asyncio and httptools, with at most 256 KiB held per stream.

Why not httpx here: measured side by side (scripts/bench_relay.py, 1 MiB segments from nginx, 20 connections,
interleaved rounds), httpx and httpcore spend most of a segment in their layers (h11 events, async generators
nested five deep, 64 KiB reads, pool bookkeeping that grows with the pool, see segment_pool.py's history),
while a protocol that hands httptools' body callbacks to one reader moves the same bytes for a fraction of
the CPU. Manifests still go through httpx (client.py): they are small, cached and coalesced.

Flow control: the connection reads into a fixed READ_BYTES buffer, and stops reading (`pause_reading`) once
READ_BYTES of body wait for the viewer, so no more than 2 x READ_BYTES is ever held; the reader takes all of
it in one `read()` (one ASGI message) and reading resumes. A slow viewer slows the origin's connection, as
TCP would, instead of filling memory.

Errors, as the httpx client raises them: a pool wait over `pool_wait_seconds` is OriginBusy, a connect or
header wait over its timeout OriginTimeout, a refused or reset connection OriginUnavailable; a GET whose
connection closed before any byte came back (an origin's keep-alive timer firing as it was sent) is sent once
more on a fresh connection. A body that breaks after the headers raises OriginStreamBroken from `read()`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

import httptools

from gateway.config import OriginSettings
from gateway.errors import OriginBusy, OriginTimeout, OriginUnavailable
from gateway.origin.auth import HEADER, origin_auth_header
from gateway.origin.segment_stream import OriginStreamBroken

READ_BYTES = 128 * 1024  # one socket read at most; reading pauses with this much waiting (<= 256 KiB held)
IDLE_SECONDS = 4.0  # an idle connection is given up before the shortest common server keep-alive (5 s)
_UNSAFE_TARGET = re.compile(r"[^!-~]")  # anything but visible ASCII is percent-encoded before it is sent
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
Key = tuple[str, str, int]  # scheme, host, port


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection to an origin; feeds the response it carries."""

    def __init__(self, key: Key, view: memoryview) -> None:
        self.key = key
        self._view = view  # the pool's read buffer: consumed (copied by the parser) before the next read
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self.response: RelayStream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.response is None:  # bytes nobody asked for: the connection cannot be trusted again
            self.close()
            return
        self.response.feed(self._view[:nbytes])

    def eof_received(self) -> bool:
        return False  # close: the origin has finished with this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.response is not None:
            self.response.connection_lost(exc)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class RelayStream:
    """One origin response on a `_Connection` (a SegmentStream): headers first, then the body as it arrives."""

    def __init__(self, connection: _Connection, read_timeout: float, release: Callable[[RelayStream], None]):
        self.status_code = 0
        self.headers: dict[str, str] = {}
        self.connection = connection
        self.received = False  # any byte of the answer: after that a failure is never retried
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._read_timeout = read_timeout
        self._release: Callable[[RelayStream], None] | None = release
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._until_close = False
        self._complete = False
        self._error: str | None = None
        self._waiter: asyncio.Future[bool] | None = None
        connection.response = self

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet read: at most 2 x READ_BYTES."""
        return self._buffered

    # -- httptools callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer on one request: never reuse this connection
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: an interim answer, the real one follows
            self.headers = {}
            return
        self.status_code = status
        self.reusable = self._parser.should_keep_alive()
        framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._until_close = not framed and status not in (204, 304)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= READ_BYTES and not self._paused and self.connection.transport is not None:
            self._paused = True
            self.connection.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status_code:
            self._complete = True
            self._wake()

    # -- from the connection -------------------------------------------------------------------------------

    def feed(self, data: memoryview) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            if not self._complete:
                self._fail(f"malformed response from the origin ({exc})")
            self.connection.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self._complete:
            return
        if self.status_code and self._until_close and exc is None:
            self._complete = True  # a body delimited by the end of the connection
            self._wake()
            return
        self._fail("the origin closed the connection" if exc is None else type(exc).__name__)

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(False)

    # -- the reader ----------------------------------------------------------------------------------------

    async def wait_headers(self) -> None:
        """Until the status line and headers are in; raises `_NothingBack` if the connection closed first."""
        while not self.status_code:
            if self._error is not None:
                raise _NothingBack(self._error) if not self.received else OriginStreamBroken(self._error)
            await self._wait()

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise OriginStreamBroken(self._error)
            if self._complete:
                return b""
            await self._wait()
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        if self._paused:
            self._paused = False
            if self.connection.transport is not None:
                self.connection.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _wait(self) -> None:
        # A timer handle, not asyncio.timeout: this runs for every read, and the context manager costs more.
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._read_timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if waiter.result():
            self.connection.close()
            self._fail(f"no byte from the origin for {self._read_timeout} s")
            raise _Silent(self._read_timeout)

    @staticmethod
    def _time_out(waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(True)

    def abort(self) -> None:
        self.reusable = False
        self._fail("the viewer left")
        self.connection.close()

    def discard(self) -> None:
        """Drop the connection of a stream never handed out (its admission is the caller's to give back)."""
        self._release = None
        self.connection.response = None
        self.connection.close()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            self.connection.response = None
            if not (self._complete and self.reusable and self._error is None):
                self.connection.close()
            elif self._paused and self.connection.transport is not None:
                self.connection.transport.resume_reading()  # idle: an origin's close must be seen
            release(self)


class _NothingBack(Exception):
    """The connection ended before any byte of the answer came back: safe to send a GET again."""


class _Silent(OriginStreamBroken):
    """The read timeout passed with no byte from the origin."""


class RelayPool:
    """Streamed GETs to origins, admitted up to `segment_connections` at once, connections kept alive."""

    def __init__(
        self, settings: OriginSettings, clock: Callable[[], float] = time.time, tls: ssl.SSLContext | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._admission = asyncio.Semaphore(settings.segment_connections)
        self._idle: dict[Key, list[_Connection]] = {}
        self._tls = tls  # https origins: the system's trust store unless given (as httpx verified them)
        # One read buffer for every connection of the pool (one event loop): each read is parsed, its body
        # bytes copied out, before the loop reads from another socket.
        self._view = memoryview(bytearray(READ_BYTES))

    async def open(self, url: str, headers: Mapping[str, str]) -> RelayStream:
        """Send a GET for `url` and wait for the answer's headers; the stream must be closed (`aclose()`)."""
        wait = self._settings.pool_wait_seconds
        try:
            async with asyncio.timeout(wait):
                await self._admission.acquire()
        except TimeoutError:
            raise OriginBusy(f"every origin connection stayed busy for {wait} s") from None
        try:
            return await self._send(url, headers)
        except BaseException:
            self._admission.release()
            raise

    async def _send(self, url: str, headers: Mapping[str, str]) -> RelayStream:
        key, request = self._request(url, headers)
        shown = url.split("?", 1)[0]  # origin URLs in messages lose their query (it may carry credentials)
        for attempt in range(2):
            # The retry takes a fresh connection: after an origin restart every idle one may be dead.
            connection = (None if attempt else self._reuse(key)) or await self._connect(key, shown)
            stream = RelayStream(connection, self._settings.read_timeout_seconds, self._give_back)
            assert connection.transport is not None
            connection.transport.write(request)
            try:
                await stream.wait_headers()
                return stream
            except _Silent:
                stream.discard()
                raise OriginTimeout(f"origin timed out waiting for {shown}") from None
            except _NothingBack as failed:
                stream.discard()
                if attempt:
                    raise OriginUnavailable(f"origin unreachable at {shown}: {failed}") from None
            except OriginStreamBroken as failed:  # a broken or malformed head: nothing to relay
                stream.discard()
                raise OriginUnavailable(f"origin unreachable at {shown}: {failed}") from None
            except BaseException:
                stream.discard()
                raise
        raise AssertionError("unreachable")

    def _request(self, url: str, headers: Mapping[str, str]) -> tuple[Key, bytes]:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _UNSAFE_TARGET.search(target):
            target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
        authority = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"GET {target} HTTP/1.1", f"host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if not _UNSAFE_VALUE.search(name + value)]
        if self._settings.auth_secret:
            lines.append(
                f"{HEADER}: "
                + origin_auth_header(self._settings.auth_secret, method="GET", target=target, now=self._clock())
            )
        return (scheme, host, port), ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reuse(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.lost and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self, key: Key, shown: str) -> _Connection:
        scheme, host, port = key
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._settings.connect_timeout_seconds):
                _, connection = await loop.create_connection(
                    lambda: _Connection(key, self._view), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise OriginTimeout(f"origin timed out connecting to {shown}") from None
        except OSError as exc:
            raise OriginUnavailable(f"origin unreachable at {shown}: {type(exc).__name__}") from exc
        return connection

    def _give_back(self, stream: RelayStream) -> None:
        connection = stream.connection
        if not connection.lost:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.key, []).append(connection)
        self._admission.release()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
