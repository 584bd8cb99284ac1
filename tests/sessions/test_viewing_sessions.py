"""Viewing sessions end to end: the session API, refresh, revocation, scoped tokens and delivery modes.

The demo gateway runs in-process with an injected clock, in front of a real HTTP origin on 127.0.0.1
serving the bundled streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import m3u8
import pytest

from gateway.dev.demo import MEDIA_ROOT, build_demo
from gateway.tokens.native import inspect_token
from tests.support.clock import FakeClock
from tests.support.servers import static_origin

PAID = {"authorization": "Bearer demo-paid"}
ASSET = "/vod/title-9000/master.m3u8"


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with static_origin(MEDIA_ROOT) as (url, _):
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def gateway(origin: str, tmp_path: Path, clock: FakeClock, **overrides: Any) -> httpx.AsyncClient:
    app = build_demo(tmp_path, origin, clock=clock, **overrides)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@pytest.fixture
async def client(origin: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(origin, tmp_path, clock, media_ttl_seconds=300, token_ttl_seconds=300) as c:
        yield c


async def start(client: httpx.AsyncClient, asset: str = ASSET, headers: dict[str, str] = PAID) -> dict[str, object]:
    response = await client.post("/api/sessions", json={"asset": asset}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def uris(text: str, base: str) -> list[str]:
    playlist = m3u8.loads(text)
    found = [p.uri for p in playlist.playlists] + [m.uri for m in playlist.media if m.uri]
    found += [s.uri for s in playlist.segments] + [k.uri for k in playlist.keys if k and k.uri]
    return [urljoin(base, u) for u in dict.fromkeys(found)]


async def test_session_for_a_paid_user(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await start(client)
    assert set(session) >= {"playback_url", "token", "expires_at", "session_id", "refresh_url"}
    grant = inspect_token(str(session["token"]))
    assert grant.path_prefixes == ("/vod/title-9000/",)  # the title's prefix, never a single file
    assert grant.session_ends_at == int(clock.now) + 4 * 3600
    assert (await client.get(str(session["playback_url"]))).status_code == 200


@pytest.mark.parametrize(
    ("headers", "asset", "status", "error"),
    [
        ({}, ASSET, 401, "unauthenticated"),
        ({"authorization": "Bearer nobody"}, ASSET, 401, "unauthenticated"),
        ({"authorization": "Bearer demo-free"}, ASSET, 403, "not_entitled"),
        ({"authorization": "Bearer demo-abroad"}, ASSET, 403, "geo_blocked"),
        (PAID, "/vod/nope/master.m3u8", 404, "unknown_asset"),
        (PAID, "/vod/title-9000/../free-trailer/master.m3u8", 404, "unknown_asset"),
        (PAID, "/vod/title-9000/v144/seg_000.ts", 404, "unknown_asset"),
    ],
)
async def test_refusals_name_a_reason(
    client: httpx.AsyncClient, headers: dict[str, str], asset: str, status: int, error: str
) -> None:
    response = await client.post("/api/sessions", json={"asset": asset}, headers=headers)
    assert response.status_code == status and response.json()["error"] == error
    assert response.json()["detail"]


async def test_free_user_gets_the_free_title(client: httpx.AsyncClient) -> None:
    await start(client, "/vod/free-trailer/master.m3u8", {"authorization": "Bearer demo-free"})


async def test_bad_request_bodies(client: httpx.AsyncClient) -> None:
    for body in (b"not json", b"[1]", b'{"asset": 5}', b"x" * 20000):
        response = await client.post("/api/sessions", content=body, headers=PAID)
        assert response.status_code == 400 and response.json()["error"] == "bad_request"


async def test_ip_binding_v4_and_v6(origin: str, tmp_path: Path, clock: FakeClock) -> None:
    app = build_demo(tmp_path, origin, clock=clock, ip_binding=True)
    for address, network in (("203.0.113.9", "203.0.113.9/32"), ("2001:db8:5:6:7::1", "2001:db8:5:6::/64")):
        transport = httpx.ASGITransport(app=app, client=(address, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            session = await start(c)
            assert str(inspect_token(str(session["token"])).client_network) == network
            assert (await c.get(str(session["playback_url"]))).status_code == 200
        other = httpx.ASGITransport(app=app, client=("198.51.100.1", 5000))
        async with httpx.AsyncClient(transport=other, base_url="http://127.0.0.1") as c:
            response = await c.get(str(session["playback_url"]))
            assert response.status_code == 403 and response.json()["error"] == "ip"


async def test_refresh_revoke_and_the_hard_cap(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await start(client)
    clock.advance(600)  # the first token has expired
    response = await client.post(str(session["refresh_url"]), json={"token": session["token"]})
    assert response.status_code == 200
    fresh = response.json()
    assert fresh["expires_at"] == int(clock.now) + 300 and fresh["session_id"] == session["session_id"]
    assert inspect_token(fresh["token"]).path_prefixes == ("/vod/title-9000/",)
    assert (await client.get(fresh["playback_url"])).status_code == 200

    other = await start(client)
    response = await client.post(str(other["refresh_url"]), json={"token": session["token"]})
    assert response.status_code == 403 and response.json()["error"] == "scope"  # another session's token

    revoke = await client.request("DELETE", f"/api/sessions/{session['session_id']}", json={"token": fresh["token"]})
    assert revoke.status_code == 204
    response = await client.post(str(session["refresh_url"]), json={"token": fresh["token"]})
    assert response.status_code == 403 and response.json()["error"] == "revoked"
    response = await client.get(fresh["playback_url"])
    assert response.status_code == 403 and response.json()["error"] == "revoked"

    clock.advance(4 * 3600 + 1)
    response = await client.post(str(other["refresh_url"]), json={"token": other["token"]})
    assert response.status_code == 403 and response.json()["error"] == "session_ended"


async def test_minute_30_switch_to_a_rendition_never_loaded(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """The hls.js #1450 failure: tokens expire, then a bitrate switch loads a new rendition. No 403."""
    session = await start(client)
    master_url = "http://127.0.0.1" + str(session["playback_url"])
    master = await client.get(master_url)
    variants = [u for u in uris(master.text, master_url)]
    first, never_loaded = variants[0], variants[-1]
    media = await client.get(first)
    segment = uris(media.text, first)[0]
    assert (await client.get(segment)).status_code == 200
    assert inspect_token(parse_qs(urlsplit(segment).query)["token"][0]).scope == "media"

    clock.advance(30 * 60)  # six media-token lifetimes and the session token are long gone
    # A VOD playlist is loaded once, so its segment URLs live until the session's cap (live ones roll:
    # tests/tokens/test_media_token_life.py).
    assert (await client.get(segment)).status_code == 200
    switched = await client.get(never_loaded)
    assert switched.status_code == 200, switched.text
    for uri in uris(switched.text, never_loaded):
        assert (await client.get(uri)).status_code == 200, uri

    clock.advance(4 * 3600)  # past the session's maximum life: even playlist tokens stop
    response = await client.get(never_loaded)
    assert response.status_code == 403 and response.json()["error"] == "expired"


async def test_a_media_token_opens_no_playlist(client: httpx.AsyncClient) -> None:
    session = await start(client)
    master_url = "http://127.0.0.1" + str(session["playback_url"])
    variant = uris((await client.get(master_url)).text, master_url)[0]
    segment = uris((await client.get(variant)).text, variant)[0]
    media_token = parse_qs(urlsplit(segment).query)["token"][0]
    response = await client.get(f"/vod/title-9000/v360/index.m3u8?token={media_token}")
    assert response.status_code == 403 and response.json()["error"] == "scope"


async def test_cookie_mode(client: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await client.post("/api/sessions", json={"asset": "/cookie" + ASSET}, headers=PAID)
    cookie = response.headers["set-cookie"]
    assert "Path=/cookie/vod/title-9000/" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain-HTTP localhost only
    session = response.json()
    assert "token" not in str(session["playback_url"])
    origin_master = (MEDIA_ROOT / "vod/title-9000/master.m3u8").read_bytes()
    master = await client.get(str(session["playback_url"]))
    assert master.content == origin_master  # no tokens: identical for every viewer
    clock.advance(200)  # past half the cookie's life: the next response re-issues it (rolling, 5 min)
    renewed = await client.get(str(session["playback_url"]))
    assert "gw_token=" in renewed.headers["set-cookie"] and "Max-Age=300" in renewed.headers["set-cookie"]
    base = "http://127.0.0.1" + str(session["playback_url"])
    media_url = uris(master.text, base)[0]
    media = await client.get(media_url)
    assert "token=" not in media.text
    # A VOD media playlist is loaded once and then used for the whole film: the cookie handed out with it
    # lasts until the session's cap, so a player that refreshes nothing plays to the end.
    assert f"Max-Age={4 * 3600 - 200}" in media.headers["set-cookie"]
    for uri in uris(media.text, media_url):
        assert (await client.get(uri)).status_code == 200
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://127.0.0.1")
    assert (await anonymous.get(media_url)).status_code == 401

    clock.advance(3 * 3600)  # 36 cookie TTLs later, with no playlist reload: still playing
    segment = await client.get(uris(media.text, media_url)[-1])
    assert segment.status_code == 200 and "set-cookie" not in segment.headers


async def test_hybrid_mode_exchanges_the_master_token_for_a_cookie(client: httpx.AsyncClient) -> None:
    session = await start(client, "/hybrid" + ASSET)
    assert "token=" in str(session["playback_url"])
    client.cookies.clear()
    master = await client.get(str(session["playback_url"]))
    assert "gw_token=" in master.headers["set-cookie"] and "token=" not in master.text
    base = "http://127.0.0.1" + str(session["playback_url"])
    media_url = uris(master.text, base)[0]
    assert (await client.get(media_url)).status_code == 200


async def test_path_token_mode(client: httpx.AsyncClient) -> None:
    session = await start(client, "/pathmode" + ASSET)
    playback = str(session["playback_url"])
    assert playback.startswith(f"/t/{session['token']}/pathmode/vod/title-9000/")
    master = await client.get(playback)
    assert master.content == (MEDIA_ROOT / "vod/title-9000/master.m3u8").read_bytes()  # relative URIs inherit
    base = "http://127.0.0.1" + playback
    media_url = uris(master.text, base)[0]
    media = await client.get(media_url)
    for uri in uris(media.text, media_url):
        assert uri.startswith(f"http://127.0.0.1/t/{session['token']}/")
        assert (await client.get(uri)).status_code == 200
    tampered = playback.replace(str(session["token"])[5:9], "AAAA")
    assert (await client.get(tampered)).status_code == 403
