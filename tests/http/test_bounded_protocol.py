"""Request heads are bounded in bytes and time, under the uvicorn every command runs (gateway/runtime.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.http.bounded_protocol import MAX_HEAD_BYTES, BoundedHttpToolsProtocol
from gateway.runtime import UVICORN_OPTIONS
from tests.support.servers import free_port, serve_app


async def hello(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


APP = Starlette(routes=[Route("/", hello)])


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_every_command_runs_uvicorn_with_the_bounded_protocol() -> None:
    assert UVICORN_OPTIONS["http"] is BoundedHttpToolsProtocol


def test_a_huge_header_is_refused_after_the_limit_and_others_are_served() -> None:
    with serve_app(APP) as url, connect(url) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(OSError):  # the server closes on us
            for _ in range(3200):  # offers 200 MiB
                sock.sendall(b"a" * 65536)
                sent += 65536
        refused = answer(sock)
        assert refused.startswith(b"HTTP/1.1 431") and b"request head over" in refused
        assert sent < 32 * 1024 * 1024  # cut off near the limit (plus what socket buffers absorbed)
        assert httpx.get(url + "/").text == "ok"


def test_a_normal_head_near_the_limit_and_a_body_in_the_same_packet_pass() -> None:
    with serve_app(APP) as url:
        headers = {"x-long": "v" * (MAX_HEAD_BYTES - 2048)}
        assert httpx.get(url + "/", headers=headers).text == "ok"


class _QuickHead(BoundedHttpToolsProtocol):
    head_seconds = 0.5


@contextlib.contextmanager
def quick_head_server() -> Iterator[str]:
    port = free_port()
    options: dict[str, Any] = {**UVICORN_OPTIONS, "http": _QuickHead}
    server = uvicorn.Server(uvicorn.Config(APP, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_half_sent_requests_are_timed_out_and_closed() -> None:
    with quick_head_server() as url:
        held = [connect(url) for _ in range(200)]
        for index, sock in enumerate(held):
            if index % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a head, then nothing
        started = time.monotonic()
        answers = [answer(sock) for sock in held]
        assert time.monotonic() - started < 5
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers[1::2])  # told why
        assert all(a == b"" for a in answers[0::2])  # never sent a byte: just closed
        for sock in held:
            sock.close()
        assert httpx.get(url + "/").text == "ok"


def test_an_idle_kept_alive_connection_outlives_a_players_gap_between_segments() -> None:
    """uvicorn's default closed it after 5 s, racing the player's next request on it (a reset to retry)."""
    with serve_app(APP) as url, connect(url) as sock:
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # a 6 s segment's worth of idling
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
