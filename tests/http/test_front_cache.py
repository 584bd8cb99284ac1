"""Manifests for the nginx front's cache (gateway/http/front_cache.py): what a manifest's verdict hands nginx
(a cache key only where the bytes are the same for every viewer, this viewer's cookie), and what a fill
answers (no viewer's cookie, kept no longer than the gateway's copy is fresh). Only a trusted proxy gets
either; the real nginx runs in tests/integration/test_nginx_front_manifests.py."""

from __future__ import annotations

import ipaddress
import time
from email.utils import formatdate, parsedate_to_datetime

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.config_schema import Delivery
from gateway.http.app import build_app
from gateway.http.front_cache import fill_headers
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.origin.test_manifest_cache import ok

RING = KeyRing((HmacKey("k1", b"\x17" * 32),))
VOD = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n"
ORIGIN = "http://origin.test/media/"
FRONT, STRANGER = ("127.0.0.1", 40000), ("10.9.8.7", 40000)
FILL = {"x-front-fill": "1"}
ASKED = {"x-front-manifest": "1"}


def test_nginx_keeps_a_fill_to_the_last_whole_second_before_the_copy_goes_stale() -> None:
    kept = fill_headers(1_800_000_061.4, now=1_800_000_001.7)
    assert kept == {"x-accel-expires": "@1800000060", "expires": formatdate(1_800_000_061, usegmt=True)}
    assert fill_headers(1_800_000_002.0, now=1_800_000_000.1)["x-accel-expires"] == "@1800000001"
    assert fill_headers(1_800_000_001.9, now=1_800_000_001.2) == {"x-accel-expires": "0"}  # this second ends later


def token(prefix: str) -> str:
    return sign_grant(Grant((prefix,), int(time.time()) + 600, session_id="s-fc"), RING)


@pytest.fixture
async def gateway() -> object:
    settings = Settings(
        keys=RING,
        routes=(
            Route(mount="/c/", origin=ORIGIN, delivery=Delivery.COOKIE),
            Route(mount="/qp/", origin=ORIGIN, delivery=Delivery.QUERYPARAM),
            Route(mount="/q/", origin=ORIGIN),
        ),
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    fetched: list[str] = []

    def origin(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        return ok(VOD)  # a network stream, as the origin client reads it

    return build_app(settings, origin_transport=httpx.MockTransport(origin)), fetched


def client(app: object, peer: tuple[str, int] = FRONT) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=peer), base_url="http://gw.test")  # type: ignore[arg-type]


async def test_a_fill_from_the_front_is_kept_until_the_copy_goes_stale_and_says_so_downstream(
    gateway: tuple[object, list[str]],
) -> None:
    app, _ = gateway
    url = f"/qp/t/index.m3u8?token={token('/qp/t/')}"
    async with client(app) as front, client(app, STRANGER) as viewer:
        filled = await front.get(url, headers=FILL)
        direct = await viewer.get(url, headers=FILL)  # not the front: an ordinary answer
    assert filled.status_code == 200 and filled.content == direct.content
    until = int(filled.headers["x-accel-expires"].removeprefix("@"))
    assert time.time() + 57 < until < time.time() + 60  # the copy's 60 s (no max-age from the origin)
    assert filled.headers["cache-control"] == "public"
    assert parsedate_to_datetime(filled.headers["expires"]).timestamp() == until + 1
    assert "x-accel-expires" not in direct.headers and direct.headers["cache-control"].startswith("public, max-age=")


async def test_a_cookie_mode_fill_carries_no_viewers_cookie(gateway: tuple[object, list[str]]) -> None:
    app, _ = gateway
    url = f"/c/t/index.m3u8?token={token('/c/t/')}"  # a first use: the gateway would hand out the cookie
    async with client(app) as front:
        filled = await front.get(url, headers=FILL)
        viewer = await front.get(url)
    assert "set-cookie" not in filled.headers and filled.headers["x-accel-expires"].startswith("@")
    assert filled.headers["cache-control"] == "private, no-store"
    assert viewer.headers["set-cookie"].startswith("gw_token=") and filled.content == viewer.content


async def test_a_tokenized_manifest_is_never_answered_as_a_fill(gateway: tuple[object, list[str]]) -> None:
    app, _ = gateway
    async with client(app) as front:
        response = await front.get(f"/q/t/index.m3u8?token={token('/q/t/')}", headers=FILL)
    assert "x-accel-expires" not in response.headers and response.headers["cache-control"] == "private, no-store"
    assert b"token=" in response.content


async def test_manifest_verdicts_key_identical_manifests_and_hand_out_this_viewers_cookie(
    gateway: tuple[object, list[str]],
) -> None:
    app, fetched = gateway

    async def verdict(target: str) -> httpx.Response:
        async with client(app) as front:
            return await front.get("/_gateway/verdict", headers={"x-original-uri": target, **ASKED})

    queryparam = await verdict(f"/qp/t/index.m3u8?junk=1&token={token('/qp/t/')}")
    assert queryparam.status_code == 204
    assert queryparam.headers["x-front-manifest-key"] == f"queryparam:/qp/ {ORIGIN}t/index.m3u8"  # no token, no junk
    assert queryparam.headers["cache-control"] == "max-age=5" and "set-cookie" not in queryparam.headers
    assert fetched == []  # a queryparam verdict never fetches the origin

    value = token("/c/t/")
    cookie = await verdict(f"/c/t/index.m3u8?token={value}")
    assert cookie.headers["x-front-manifest-key"] == f"cookie:/c/ {ORIGIN}t/index.m3u8"
    assert cookie.headers["set-cookie"].startswith(f"gw_token={value};")
    assert cookie.headers["cache-control"] == "no-store"  # a viewer's cookie: never a reused verdict

    query = await verdict(f"/q/t/index.m3u8?token={token('/q/t/')}")
    assert query.status_code == 204 and "x-front-manifest-key" not in query.headers  # proxied, never stored
    assert "x-origin-url" not in query.headers
