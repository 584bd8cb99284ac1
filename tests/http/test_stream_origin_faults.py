"""Segments relayed from origins that differ or lie (gateway/http/stream.py), through a real uvicorn gateway.

An origin that breaks mid-body aborts the response (never a clean end a CDN would cache); the player's own
Accept-Encoding goes upstream (identity when it sent none); an origin redirect keeps its Location; a type a
browser could run on the gateway's origin is never passed on, and every answer says `nosniff`.
"""

from __future__ import annotations

import http.server
import socket
from collections.abc import Iterator

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.servers import OriginRequest, scripted_origin, serve_app

RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
TOKEN = sign_grant(Grant(("/vod/t/",), 4_000_000_000), RING)
Handler = http.server.BaseHTTPRequestHandler


def respond(request: OriginRequest, handler: Handler) -> None:
    name = request.target.split("?")[0].rsplit("/", 1)[-1]
    if name == "broken_chunked.ts":
        handler.send_response(200)
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
        handler.wfile.flush()
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        handler.connection.shutdown(socket.SHUT_RDWR)  # a reset mid-body (close() alone waits for the handler)
    elif name == "broken_length.ts":
        handler.send_response(200)
        handler.send_header("content-length", "100000")
        handler.end_headers()
        handler.wfile.write(b"y" * 1000)
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)  # gone, 99,000 bytes short
    elif name == "moved.ts":
        handler.send_response(302)
        handler.send_header("location", "https://cdn.example/signed/moved.ts?sig=abc")
        handler.send_header("content-length", "0")
        handler.end_headers()
    else:  # echo what arrived, typed as the origin pleases
        body = request.headers.get("accept-encoding", "<none>").encode()
        handler.send_response(200)
        handler.send_header("content-type", "text/html" if name.endswith(".unknown") else "text/vtt")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with scripted_origin(respond) as (origin, _):
        settings = Settings(keys=RING, routes=(Route(mount="/vod/", origin=origin + "vod/"),))
        with serve_app(build_app(settings)) as url:
            yield url


def get(url: str, name: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{url}/vod/t/{name}?token={TOKEN}", headers=headers, timeout=10)


@pytest.mark.parametrize("name", ["broken_chunked.ts", "broken_length.ts"])
def test_an_origin_that_breaks_mid_body_aborts_the_response(gateway: str, name: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError):  # the player (or CDN) sees a broken transfer...
        get(gateway, name)
    assert get(gateway, "sub.vtt").status_code == 200  # ...and the gateway carries on


def test_the_players_accept_encoding_goes_upstream_and_identity_when_it_sent_none(gateway: str) -> None:
    assert get(gateway, "a.vtt", {"accept-encoding": "gzip"}).text == "gzip"
    with socket.create_connection(("127.0.0.1", int(gateway.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"GET /vod/t/b.vtt?token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"\r\n\r\nidentity")  # not httpx's own gzip


def test_an_origin_redirect_keeps_its_location(gateway: str) -> None:
    moved = get(gateway, "moved.ts")
    assert moved.status_code == 302 and moved.headers["location"] == "https://cdn.example/signed/moved.ts?sig=abc"


def test_types_a_browser_could_run_are_never_passed_on_and_nosniff_is_always_said(gateway: str) -> None:
    unknown = get(gateway, "page.unknown")
    assert unknown.headers["content-type"] == "application/octet-stream"  # the origin said text/html
    assert unknown.headers["x-content-type-options"] == "nosniff"
    subtitles = get(gateway, "sub.vtt")
    assert subtitles.headers["content-type"].startswith("text/vtt") and subtitles.headers["x-content-type-options"]
