"""uvicorn's httptools protocol with the two bounds it lacks: a request head (request line and headers)
has a byte limit and a deadline.

Without them a client can send a 200 MiB header (httptools buffers it whole, and the instance stalls for
seconds) or open thousands of connections that send half a request and then nothing (each held open
forever). The fast path is unchanged: one integer comparison per received chunk while a head is being
read, nothing once it is complete.

    head over MAX_HEAD_BYTES                 -> 431 Request Header Fields Too Large, connection closed
    head not complete within HEAD_SECONDS    -> 408 Request Timeout, connection closed
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # nginx's default allows 4 x 8 KiB header lines; a playlist URL with a token fits
HEAD_SECONDS = 10.0  # from the first byte of a request (or the connection) to the end of its headers


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`http=` for uvicorn (see gateway/runtime.py)."""

    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES
    head_seconds: ClassVar[float] = HEAD_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request head (also before the first byte of a connection)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted, then fed: a chunk that completes the head (its body may follow in the same chunk) ends the
        # count inside feed_data. A transport read is at most a few hundred KiB, so the parser never holds
        # much more than the limit before the refusal.
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse(431, "Request Header Fields Too Large", f"request head over {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection: a fresh head, a fresh deadline
            self._in_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:
                self._refuse(408, "Request Timeout", f"request head not complete within {self.head_seconds:g} s")
            else:
                self.transport.close()  # a connection that never sent a byte: nothing to answer

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self._cancel_head_timer()
        self.logger.info("refused a request head: %s", detail)
        body = f'{{"error": "{reason.lower().replace(" ", "_")}", "detail": "{detail}"}}'.encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()
