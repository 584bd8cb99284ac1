"""The session API over ASGI: status codes, JSON bodies, headers and the body-size limit.

    POST   /api/sessions                 {"asset": …} + Authorization: Bearer <credential>  -> 201
    POST   /api/sessions/{id}/refresh    {"token": …} (or Authorization: Bearer <token>)     -> 200
    DELETE /api/sessions/{id}            {"token": …} (or Authorization: Bearer <token>)     -> 204

The whole app (`build_app`) with an injected clock and no origin: the session API never needs one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import Delivery
from gateway.http.api import MAX_BODY_BYTES
from gateway.http.app import build_app
from gateway.sessions.entitlements import CatalogEntitlements, Title, Viewer
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import verify_signature
from tests.support.clock import FakeClock

RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
MASTER = "/vod/title-9000/master.m3u8"
PAID = {"authorization": "Bearer paid"}
TTL, CAP = 300, 3600
ISSUED_FIELDS = {
    "session_id",
    "token",
    "expires_at",
    "session_ends_at",
    "title_prefix",
    "mode",
    "playback_url",
    "refresh_url",
}
CATALOG = CatalogEntitlements(
    users={"paid": Viewer("u-paid", "Paula", "paid", "NL"), "free": Viewer("u-free", "Fred", "free", "NL")},
    titles=(Title("/vod/title-9000/", "Title 9000", paid=True, blocked_countries=frozenset({"KP"})),),
)


def settings(**session_settings: Any) -> Settings:
    sessions = SessionSettings(
        **{"token_ttl_seconds": TTL, "media_ttl_seconds": TTL, "max_life_seconds": CAP, **session_settings}
    )
    routes = (
        Route(mount="/vod/", origin="http://127.0.0.1:9/vod/"),
        Route(mount="/cookie/vod/", origin="http://127.0.0.1:9/vod/", delivery=Delivery.COOKIE),
    )
    return Settings(keys=RING, routes=routes, sessions=sessions, catalog=CATALOG)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> Starlette:
    return build_app(settings(ip_binding=True, country_header="x-viewer-country"), clock=clock)


def client_at(app: Starlette, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_at(app, "203.0.113.9") as client:
        yield client


async def create(api: httpx.AsyncClient, **kwargs: Any) -> dict[str, Any]:
    response = await api.post("/api/sessions", json={"asset": MASTER}, headers=PAID, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_refusal(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail", "request_id"} and body["error"] == error and body["detail"], body
    return body


# -- create -----------------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_issued_session(api: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await api.post("/api/sessions", json={"asset": MASTER}, headers=PAID)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"  # a token must never sit in a shared cache
    body = response.json()
    assert set(body) == ISSUED_FIELDS
    now = int(clock.now)
    assert (body["expires_at"], body["session_ends_at"]) == (now + TTL, now + CAP)
    assert body["title_prefix"] == "/vod/title-9000/" and body["mode"] == "query"
    assert body["playback_url"] == f"{MASTER}?token={body['token']}"
    assert body["refresh_url"] == f"/api/sessions/{body['session_id']}/refresh"
    grant = verify_signature(body["token"], RING)
    assert str(grant.client_network) == "203.0.113.9/32"  # the ASGI client address, bound
    assert "set-cookie" not in response.headers
    lower_case = await api.post("/api/sessions", json={"asset": MASTER}, headers={"authorization": "bearer  paid "})
    assert lower_case.status_code == 201  # the scheme is case-insensitive (RFC 9110), the credential trimmed


@pytest.mark.parametrize(
    ("headers", "payload", "status", "error"),
    [
        ({}, {"asset": MASTER}, 401, "unauthenticated"),
        ({"authorization": "Basic paid"}, {"asset": MASTER}, 401, "unauthenticated"),  # a known credential
        ({"authorization": "Bearer "}, {"asset": MASTER}, 401, "unauthenticated"),
        ({"authorization": "Bearer nobody"}, {"asset": MASTER}, 401, "unauthenticated"),
        ({"authorization": "Bearer free"}, {"asset": MASTER}, 403, "not_entitled"),
        ({**PAID, "x-viewer-country": "kp"}, {"asset": MASTER}, 403, "geo_blocked"),  # the trusted header
        (PAID, {"asset": "/vod/other/master.m3u8"}, 404, "unknown_asset"),
        (PAID, {"asset": "/vod/title-9000/seg.ts"}, 404, "unknown_asset"),
        (PAID, {"asset": "/vod/title-9000/../x/master.m3u8"}, 404, "unknown_asset"),
        (PAID, {}, 400, "bad_request"),
        (PAID, {"asset": ""}, 400, "bad_request"),
        (PAID, {"asset": 5}, 400, "bad_request"),
        (PAID, {"asset": [MASTER]}, 400, "bad_request"),
    ],
)
async def test_create_refusals(
    api: httpx.AsyncClient, headers: dict[str, str], payload: dict[str, Any], status: int, error: str
) -> None:
    assert_refusal(await api.post("/api/sessions", json=payload, headers=headers), status, error)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"asset"', b"null", b'{"asset": ', b"\xff\xfe", b"\xc3\x28"])
async def test_a_body_that_is_not_a_json_object_is_a_bad_request(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.post("/api/sessions", content=body, headers={**PAID, "content-type": "application/json"})
    assert_refusal(response, 400, "bad_request")


async def test_the_body_size_limit(api: httpx.AsyncClient) -> None:
    def padded(size: int) -> bytes:
        body = json.dumps({"asset": MASTER, "pad": ""}).encode()
        return body.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(body)) + b'"')

    assert len(padded(MAX_BODY_BYTES)) == MAX_BODY_BYTES == 16 * 1024
    accepted = await api.post("/api/sessions", content=padded(MAX_BODY_BYTES), headers=PAID)
    assert accepted.status_code == 201, accepted.text
    refused = await api.post("/api/sessions", content=padded(MAX_BODY_BYTES + 1), headers=PAID)
    body = assert_refusal(refused, 400, "bad_request")
    assert str(MAX_BODY_BYTES) in body["detail"]
    for path in ("/api/sessions/x/refresh", "/api/sessions/x"):
        method = "POST" if path.endswith("refresh") else "DELETE"
        assert_refusal(await api.request(method, path, content=padded(MAX_BODY_BYTES + 1)), 400, "bad_request")


async def test_cookie_mode_sets_the_cookie_on_the_title_prefix(clock: FakeClock) -> None:
    app = build_app(settings(), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gw.example") as client:
        response = await client.post("/api/sessions", json={"asset": "/cookie" + MASTER}, headers=PAID)
    assert response.status_code == 201
    body = response.json()
    assert body["mode"] == "cookie" and body["playback_url"] == "/cookie" + MASTER
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"gw_token={body['token']};")
    for attribute in ("Path=/cookie/vod/title-9000/", "HttpOnly", "Secure", "SameSite=Lax", f"Max-Age={TTL}"):
        assert attribute in cookie, cookie


# -- refresh ----------------------------------------------------------------------------------------------


async def test_refresh_answers_200_with_a_new_token_from_the_body_or_the_bearer_header(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    session = await create(api)
    clock.advance(2 * TTL)  # expired tokens refresh
    by_body = await api.post(session["refresh_url"], json={"token": session["token"]})
    assert by_body.status_code == 200 and by_body.headers["cache-control"] == "no-store"
    renewed = by_body.json()
    assert set(renewed) == ISSUED_FIELDS and renewed["session_id"] == session["session_id"]
    assert renewed["expires_at"] == int(clock.now) + TTL and renewed["token"] != session["token"]
    by_header = await api.post(session["refresh_url"], headers={"authorization": f"Bearer {renewed['token']}"})
    assert by_header.status_code == 200 and by_header.json()["session_id"] == session["session_id"]


async def test_refresh_refusals(api: httpx.AsyncClient, app: Starlette, clock: FakeClock) -> None:
    session, other = await create(api), await create(api)
    url = session["refresh_url"]
    assert_refusal(await api.post(url), 400, "bad_request")
    assert_refusal(await api.post(url, json={"token": 5}), 400, "bad_request")
    assert_refusal(await api.post(url, json={"token": "garbage"}), 403, "malformed")
    assert_refusal(await api.post(url, json={"token": other["token"]}), 403, "scope")
    assert_refusal(
        await api.post(url, json={"token": session["token"]}, headers={"x-viewer-country": "KP"}), 403, "geo_blocked"
    )
    async with client_at(app, "198.51.100.7") as moved:  # the session is bound to 203.0.113.9/32
        assert_refusal(await moved.post(url, json={"token": session["token"]}), 403, "ip")
    clock.advance(CAP + 1)
    assert_refusal(await api.post(url, json={"token": session["token"]}), 403, "session_ended")


# -- revoke -----------------------------------------------------------------------------------------------


async def test_revoke_answers_204_and_the_session_is_refused_from_then_on(api: httpx.AsyncClient) -> None:
    session, other = await create(api), await create(api)
    path = f"/api/sessions/{session['session_id']}"
    assert_refusal(await api.request("DELETE", path), 400, "bad_request")
    assert_refusal(await api.request("DELETE", path, json={"token": other["token"]}), 403, "scope")
    revoked = await api.request("DELETE", path, json={"token": session["token"]})
    assert revoked.status_code == 204 and revoked.content == b""
    assert_refusal(await api.post(session["refresh_url"], json={"token": session["token"]}), 403, "revoked")
    again = await api.request("DELETE", path, headers={"authorization": f"Bearer {session['token']}"})
    assert_refusal(again, 403, "revoked")
    assert (await api.post(other["refresh_url"], json={"token": other["token"]})).status_code == 200
