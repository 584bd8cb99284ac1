"""Overload at the origin boundary, through a real uvicorn gateway and a real origin on 127.0.0.1.

Segment streams hold an origin connection for as long as they last. One viewer can hold only its download
slots (`429 too_many_downloads`); when the whole segment pool is busy a new download waits at most
`pool_wait_seconds` and is answered `503 origin_busy` (both with Retry-After); playlists have their own pool,
so a crowd of downloads never keeps a player from its next playlist; a viewer who leaves frees its slot.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from gateway.config import OriginSettings, Route, Settings
from gateway.http import stream
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.servers import OriginRequest, scripted_origin, serve_app

RING = KeyRing((HmacKey("k1", b"\x02" * 32),))
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg.ts\n#EXT-X-ENDLIST\n"
Handler = http.server.BaseHTTPRequestHandler
POOL_WAIT = 0.4
HUGE = 256 << 20


def token(session: str) -> str:
    return sign_grant(Grant(("/vod/t/",), 4_000_000_000, session_id=session), RING)


class HoldingOrigin:
    """Answers `hold.ts` with headers and a first chunk, then holds the rest until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def respond(self, request: OriginRequest, handler: Handler) -> None:
        name = request.target.split("?")[0].rsplit("/", 1)[-1]
        if name == "huge.ts":  # far more than socket buffers hold: a reader that does not read stalls it
            handler.send_response(200)
            handler.send_header("content-length", str(HUGE))
            handler.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(HUGE // 65536):
                    handler.wfile.write(bytes(65536))
            return
        body = PLAYLIST if name.endswith(".m3u8") else b"\x47" * 188
        handler.send_response(200)
        handler.send_header("content-length", str(2 * len(body) if name == "hold.ts" else len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        if name == "hold.ts":
            self.release.wait(30)
            handler.wfile.write(body)


@pytest.fixture
def gateway() -> Iterator[tuple[str, HoldingOrigin]]:
    origin = HoldingOrigin()
    pools = OriginSettings(
        segment_connections=3, manifest_connections=2, pool_wait_seconds=POOL_WAIT, max_streams_per_client=2
    )
    with scripted_origin(origin.respond) as (url, _):
        settings = Settings(keys=RING, routes=(Route(mount="/vod/", origin=url + "vod/"),), origin=pools)
        with serve_app(build_app(settings)) as gateway_url:
            yield gateway_url, origin
            origin.release.set()


def get(base: str, name: str, session: str) -> httpx.Response:
    return httpx.get(f"{base}/vod/t/{name}?token={token(session)}", timeout=10)


def hold(stack: ExitStack, client: httpx.Client, base: str, session: str) -> httpx.Response:
    """A download that has its headers and stays open (the origin holds its second half)."""
    response = stack.enter_context(client.stream("GET", f"{base}/vod/t/hold.ts?token={token(session)}"))
    assert response.status_code == 200
    return response


def test_one_viewer_holds_at_most_its_download_slots(gateway: tuple[str, HoldingOrigin]) -> None:
    base, origin = gateway
    with httpx.Client(timeout=10) as client, ExitStack() as stack:
        hold(stack, client, base, "s1")
        hold(stack, client, base, "s1")
        refused = get(base, "seg.ts", "s1")
        assert refused.status_code == 429
        assert refused.headers["x-gateway-error"] == "too_many_downloads"
        assert refused.headers["retry-after"] == "1"
        assert "2 segment downloads" in refused.json()["detail"]
        assert get(base, "seg.ts", "s2").status_code == 200  # another viewer is not affected
        origin.release.set()
    assert get(base, "seg.ts", "s1").status_code == 200  # finished downloads give their slots back


def test_a_busy_segment_pool_answers_503_origin_busy_and_playlists_still_load(
    gateway: tuple[str, HoldingOrigin],
) -> None:
    base, origin = gateway
    with httpx.Client(timeout=10) as client, ExitStack() as stack:
        for session in ("a", "b", "c"):  # three viewers hold the whole segment pool
            hold(stack, client, base, session)
        started = time.monotonic()
        busy = get(base, "seg.ts", "d")
        waited = time.monotonic() - started
        assert busy.status_code == 503
        assert busy.headers["x-gateway-error"] == "origin_busy" and busy.headers["retry-after"] == "1"
        assert POOL_WAIT * 0.9 < waited < POOL_WAIT + 2  # bounded by pool_wait_seconds, not the read timeout
        playlist = get(base, "index.m3u8", "d")  # the manifest pool is another pool
        assert playlist.status_code == 200 and playlist.text.startswith("#EXTM3U")
        origin.release.set()
    assert get(base, "seg.ts", "d").status_code == 200


def test_a_viewer_who_leaves_mid_download_gives_its_slot_back(gateway: tuple[str, HoldingOrigin]) -> None:
    base, _ = gateway
    for _ in range(3):  # three rounds of two abandoned downloads: slots never accumulate
        with httpx.Client(timeout=10) as client, ExitStack() as stack:
            hold(stack, client, base, "leaver")
            hold(stack, client, base, "leaver")
        # both connections are closed with the origin still holding: the gateway must notice and let go
        deadline = time.monotonic() + 5
        while (status := get(base, "seg.ts", "leaver").status_code) == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200


def test_a_viewer_that_never_reads_loses_its_download_after_the_stall_limit(
    gateway: tuple[str, HoldingOrigin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a viewer that left (its connection stays open): one that takes no bytes. Its slots come back."""
    monkeypatch.setattr(stream, "VIEWER_STALL_SECONDS", 0.5)
    base, _ = gateway
    host, port = base.split("//", 1)[1].split(":")
    readers = []
    for _ in range(2):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /vod/t/huge.ts?token={token('stuck')} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        readers.append(sock)
    try:
        assert get(base, "seg.ts", "stuck").status_code == 429  # both slots held by readers that never read
        deadline = time.monotonic() + 10
        while (status := get(base, "seg.ts", "stuck").status_code) == 429 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 200
    finally:
        for sock in readers:
            sock.close()
