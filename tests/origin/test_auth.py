"""The authenticated origin header: an origin that checks it answers the gateway only."""

from __future__ import annotations

import dataclasses
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute

from gateway.config import OriginSettings, Route, Settings
from gateway.http.app import build_app
from gateway.origin.auth import HEADER, origin_auth_header, verify_origin_auth
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant

SECRET = b"origin-shared-secret-0123456789"
KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))


def checking_origin() -> Starlette:
    async def media(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not verify_origin_auth(request.headers.get(HEADER), SECRET, method="GET", target=target, now=time.time()):
            return PlainTextResponse("who are you?", status_code=403)
        return PlainTextResponse("segment bytes")

    return Starlette(routes=[StarletteRoute("/vod/{path:path}", media)])


async def fetch(origin_settings: OriginSettings) -> httpx.Response:
    settings = Settings(
        keys=KEYS, routes=(Route(mount="/vod/", origin="http://origin.test/vod/"),), origin=origin_settings
    )
    app = build_app(settings, origin_transport=httpx.ASGITransport(app=checking_origin()))
    token = sign_grant(Grant(("/vod/t/",), int(time.time()) + 60), KEYS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        return await client.get(f"/vod/t/seg.ts?token={token}&_HLS_msn=3")


async def test_origin_accepts_the_gateway_with_the_secret_and_refuses_it_without() -> None:
    signed = await fetch(dataclasses.replace(OriginSettings(), auth_secret=SECRET))
    assert signed.status_code == 200 and signed.text == "segment bytes"
    unsigned = await fetch(OriginSettings())
    assert unsigned.status_code == 502 and "403" in unsigned.json()["detail"]


def test_header_is_bound_to_time_and_target() -> None:
    now = 1_800_000_000
    value = origin_auth_header(SECRET, method="GET", target="/vod/t/a.ts", now=now)
    assert verify_origin_auth(value, SECRET, method="GET", target="/vod/t/a.ts", now=now + 10)
    assert not verify_origin_auth(value, SECRET, method="GET", target="/vod/t/b.ts", now=now)
    assert not verify_origin_auth(value, SECRET, method="GET", target="/vod/t/a.ts", now=now + 31)
    assert not verify_origin_auth(value, b"another-secret-0123456789", method="GET", target="/vod/t/a.ts", now=now)
    assert not verify_origin_auth("t=x;sig=y", SECRET, method="GET", target="/vod/t/a.ts", now=now)
    assert not verify_origin_auth(None, SECRET, method="GET", target="/vod/t/a.ts", now=now)


def test_secret_never_in_settings_repr() -> None:
    assert SECRET.decode() not in repr(dataclasses.replace(OriginSettings(), auth_secret=SECRET))


async def test_origin_cookies_are_never_stored_or_replayed_across_viewers() -> None:
    seen: list[str | None] = []

    async def media(request: Request) -> Response:
        seen.append(request.headers.get("cookie"))
        response = PlainTextResponse("bytes")
        response.set_cookie("origin_session", "viewer-a-secret")
        return response

    origin = Starlette(routes=[StarletteRoute("/vod/{path:path}", media)])
    settings = Settings(keys=KEYS, routes=(Route(mount="/vod/", origin="http://origin.test/vod/"),))
    app = build_app(settings, origin_transport=httpx.ASGITransport(app=origin))
    token = sign_grant(Grant(("/vod/t/",), int(time.time()) + 60), KEYS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        for _ in range(2):
            assert (await client.get(f"/vod/t/seg.ts?token={token}")).status_code == 200
    assert seen == [None, None]  # one viewer's origin cookie never rides on another's request


def test_header_is_bound_to_the_method_and_the_exact_target_bytes() -> None:
    now = 1_800_000_000
    value = origin_auth_header(SECRET, method="get", target="/vod/t/a.ts?x=1", now=now)
    assert verify_origin_auth(value, SECRET, method="GET", target="/vod/t/a.ts?x=1", now=now)  # method upper-cased
    for method, target in (("HEAD", "/vod/t/a.ts?x=1"), ("GET", "/vod/t/a.ts"), ("GET", "/vod/t/a.ts?x=2")):
        assert not verify_origin_auth(value, SECRET, method=method, target=target, now=now)
    encoded = origin_auth_header(SECRET, method="GET", target="/vod/t/a%20b.ts", now=now)
    assert not verify_origin_auth(encoded, SECRET, method="GET", target="/vod/t/a b.ts", now=now)


def test_the_age_window_is_symmetric_and_inclusive() -> None:
    now = 1_800_000_000
    value = origin_auth_header(SECRET, method="GET", target="/t", now=now)
    for offset, accepted in ((-30, True), (30, True), (-31, False), (31, False)):
        assert verify_origin_auth(value, SECRET, method="GET", target="/t", now=now + offset) is accepted, offset
    assert verify_origin_auth(value, SECRET, method="GET", target="/t", now=now + 300, max_age_seconds=300)


def test_malformed_header_values_are_refused_not_raised() -> None:
    now = 1_800_000_000
    good = origin_auth_header(SECRET, method="GET", target="/t", now=now)
    signature = good.split(";sig=", 1)[1]
    for value in (
        "",
        "garbage",
        "t=;sig=",
        f"sig={signature}",
        f"t={now}",
        f"t={now};sig=",
        f"t=1e9;sig={signature}",
        f"t={now};sig={signature[:-1]}",
        f"t= {now};sig={signature}x",
        ";;;",
        "t=9" * 50,
    ):
        assert not verify_origin_auth(value, SECRET, method="GET", target="/t", now=now), value
    assert verify_origin_auth(f"sig={signature};t={now}", SECRET, method="GET", target="/t", now=now)  # any order
