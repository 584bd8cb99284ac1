"""Hostile session requests: what a session grants is exactly what was entitled, and a leaked media token
cannot become a session. The demo gateway in-process with an injected clock, in front of a real origin."""

from __future__ import annotations

import dataclasses
import ipaddress
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.dev.demo import DEMO_TITLES, DEMO_USERS, build_demo, demo_settings
from gateway.http.app import build_app
from gateway.sessions.entitlements import CatalogEntitlements, EntitlementRefused, Refusal, Title, Viewer
from gateway.tokens.native import inspect_token
from tests.sessions.test_viewing_sessions import PAID, gateway, origin, start, uris  # noqa: F401  (origin: a module fixture)
from tests.support.clock import FakeClock
from tests.support.servers import serve_app

FREE = {"authorization": "Bearer demo-free"}
ABROAD = {"authorization": "Bearer demo-abroad"}


@pytest.mark.parametrize("titles_order", ["as_shipped", "reversed"])
@pytest.mark.parametrize("depth", [0, 1])
@pytest.mark.parametrize(
    ("headers", "refusal"), [(FREE, "not_entitled"), (ABROAD, "geo_blocked")], ids=["free", "geo-blocked"]
)
async def test_a_free_title_named_inside_a_premium_path_opens_nothing_premium(
    origin: str,  # noqa: F811
    tmp_path: Path,
    depth: int,
    headers: dict[str, str],
    refusal: str,
    titles_order: str,
) -> None:
    """Paywall/geo bypass: `/vod/<premium>/vod/<free>/master.m3u8` used to match whichever title came first
    anywhere in the path (the free one, when listed first) and then be granted for the premium prefix."""
    settings = demo_settings(tmp_path, origin, title_root_depth=depth)
    titles = DEMO_TITLES if titles_order == "as_shipped" else tuple(reversed(DEMO_TITLES))
    settings = dataclasses.replace(settings, catalog=CatalogEntitlements(DEMO_USERS, titles))
    app = build_app(settings, clock=FakeClock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        response = await client.post(
            "/api/sessions", json={"asset": "/vod/title-9000/vod/free-trailer/master.m3u8"}, headers=headers
        )
        assert response.status_code == 403 and response.json()["error"] == refusal, response.text
        own = await client.post("/api/sessions", json={"asset": "/vod/free-trailer/master.m3u8"}, headers=headers)
        assert own.status_code == 201  # the free title itself still plays


def test_titles_match_whole_segments_from_the_origin_root_most_specific_first() -> None:
    viewer = Viewer("u", "U", "free", "NL")
    catalog = CatalogEntitlements(
        {"c": viewer},
        (Title("/vod/a/", "A", paid=False), Title("/vod/a/extras/", "A extras", paid=True), Title("/vod/ab/", "AB")),
    )
    assert catalog.check(viewer, "/vod/a/hd/", None).name == "A"
    assert catalog.check(viewer, "/vod/ab/", None).name == "AB"  # not inside /vod/a/
    with pytest.raises(EntitlementRefused) as info:
        catalog.check(viewer, "/vod/a/extras/", None)  # most specific: paid
    assert info.value.reason is Refusal.NOT_ENTITLED
    with pytest.raises(EntitlementRefused) as info:
        catalog.check(viewer, "/vod/a/", None)  # the grant would open the paid extras inside it
    assert info.value.reason is Refusal.NOT_ENTITLED
    with pytest.raises(EntitlementRefused) as info:
        catalog.check(viewer, "/other/vod/a/", None)  # never matched somewhere inside the path
    assert info.value.reason is Refusal.UNKNOWN_ASSET


async def test_a_media_token_can_neither_refresh_nor_revoke_a_session(origin: str, tmp_path: Path) -> None:  # noqa: F811
    async with gateway(origin, tmp_path, FakeClock()) as client:
        session = await start(client)
        master_url = "http://127.0.0.1" + str(session["playback_url"])
        variant = uris((await client.get(master_url)).text, master_url)[0]
        segment = uris((await client.get(variant)).text, variant)[0]
        media_token = parse_qs(urlsplit(segment).query)["token"][0]
        assert inspect_token(media_token).scope == "media"
        # Path-bound tokens come with the path of their URL (the MAC covers its prefix).
        media = {"token": media_token, "path": urlsplit(segment).path}
        refreshed = await client.post(str(session["refresh_url"]), json=media)
        assert refreshed.status_code == 403 and refreshed.json()["error"] == "scope", refreshed.text
        revoke_url = f"/api/sessions/{session['session_id']}"
        revoked = await client.request("DELETE", revoke_url, json=media)
        assert revoked.status_code == 403 and revoked.json()["error"] == "scope"
        assert (await client.get(segment)).status_code == 200  # the session was not ended by it
        playlist_token = parse_qs(urlsplit(variant).query)["token"][0]  # a playlist token still may
        pathless = await client.post(str(session["refresh_url"]), json={"token": playlist_token})
        assert pathless.status_code == 403 and "send that path" in pathless.json()["detail"], pathless.text
        elsewhere = {"token": playlist_token, "path": "/vod/other-title/index.m3u8"}
        assert (await client.post(str(session["refresh_url"]), json=elsewhere)).json()["error"] == "bad_signature"
        with_path = {"token": playlist_token, "path": urlsplit(variant).path}
        assert (await client.post(str(session["refresh_url"]), json=with_path)).status_code == 200


async def test_an_ipv4_mapped_ipv6_client_is_bound_as_its_ipv4_address(origin: str, tmp_path: Path) -> None:  # noqa: F811
    app = build_demo(tmp_path, origin, clock=FakeClock(), ip_binding=True)
    transport = httpx.ASGITransport(app=app, client=("::ffff:203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        session = await start(client)
    network = inspect_token(str(session["token"])).client_network
    assert network == ipaddress.ip_network("203.0.113.9/32")  # not ::/64, which admits every mapped client


def _post_raw(url: str, head: bytes, body_chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request head, then body chunks (pausing 10 ms after each) until the server answers;
    returns (the answer, body bytes sent). Loopback socket buffers absorb a few MB the server never read."""
    split = urlsplit(url)
    sent = 0
    with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            if select.select([sock], [], [], 0.01)[0]:
                break  # the server has answered (before the body ended)
            try:
                sock.sendall(chunk)
            except OSError:
                break  # it closed on us: the answer is waiting
            sent += len(chunk)
        answer = sock.recv(65536)
    return answer, sent


def test_the_session_api_never_buffers_a_huge_body(origin: str, tmp_path: Path) -> None:  # noqa: F811
    app = build_demo(tmp_path, origin, clock=FakeClock())
    with serve_app(app) as url:
        head = (
            b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer demo-paid\r\n"
        )
        announced, sent = _post_raw(url, head + b"Content-Length: 1073741824\r\n\r\n", iter([b"{" * 65536] * 64))
        assert announced.startswith(b"HTTP/1.1 400") and b"request body over" in announced
        assert sent <= 8 * 65536  # refused on the announced length: a gigabyte is never read
        chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
        streamed, sent = _post_raw(url, head + b"Transfer-Encoding: chunked\r\n\r\n", iter([chunk] * 4096))
        assert streamed.startswith(b"HTTP/1.1 400") and b"request body over" in streamed
        assert sent < 8 * 1024 * 1024  # cut off early (256 MiB were offered), never read whole


async def test_deeply_nested_json_is_a_bad_request_not_a_crash(origin: str, tmp_path: Path) -> None:  # noqa: F811
    async with gateway(origin, tmp_path, FakeClock()) as client:
        response = await client.post("/api/sessions", content=b"[" * 8000 + b"]" * 8000, headers=PAID)
        assert response.status_code == 400 and response.json()["error"] == "bad_request", response.text


def test_a_dripping_body_meets_a_deadline(origin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from gateway.http import api

    monkeypatch.setattr(api, "BODY_SECONDS", 0.5)
    app = build_demo(tmp_path, origin, clock=FakeClock())
    with serve_app(app) as url:
        split = urlsplit(url)
        with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo-paid\r\n"
                b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
            )
            started = time.monotonic()
            answer = sock.recv(65536)  # the rest of the body never comes
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer, answer
        assert time.monotonic() - started < 5
