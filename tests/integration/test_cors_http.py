"""Cross-site players through a real uvicorn gateway: CORS on the edge and the session API.

The gateway is configured the way an operator would (a TOML file through `load_settings`) with
`[cors] allowed_origins`; requests carry an `Origin` header as a browser on another site sends it.
A listed origin is echoed with `Access-Control-Allow-Credentials: true` and `Vary: Origin` on every
response (manifests, segments, denials, the session API and its refusals); any other origin, or none,
gets `*` and never credentials. Preflights are answered for the session API and for edge GETs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.config import load_settings
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.origin_tree import TITLE, build_origin_tree
from tests.support.servers import serve_app, static_origin

SECRET = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"  # 32 bytes of 0x01, base64url
KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
PLAYER = "https://player.example"
OTHER_PLAYER = "http://localhost:8080"
STRANGER = "https://evil.example"
VIEWER = {"authorization": "Bearer viewer-1"}

CONFIG = """
[keys]
ring = "k1:{secret}"

[sessions]
cookie_same_site = "None"
cookie_partitioned = true

[cors]
allowed_origins = ["{player}", "{other}"]

[[routes]]
mount = "/vod/"
origin = "{origin}vod/"

[[routes]]
mount = "/cookie/vod/"
origin = "{origin}vod/"
delivery = "cookie"

[[users]]
credential = "viewer-1"
id = "u-1"
plan = "paid"
country = "NL"

[[titles]]
prefix = "/vod/title-9000/"
paid = true
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("origin")
    config = tmp_path_factory.mktemp("config") / "gateway.toml"
    with static_origin(root) as (origin, _):
        build_origin_tree(root, origin)
        config.write_text(CONFIG.format(secret=SECRET, player=PLAYER, other=OTHER_PLAYER, origin=origin))
        settings = load_settings(config, {})
        with serve_app(build_app(settings)) as url:
            yield url


def token() -> str:
    return sign_grant(Grant((TITLE,), int(time.time()) + 600), KEYS)


def listed(response: httpx.Response, origin: str = PLAYER) -> None:
    """The credentialed answer: the origin echoed, credentials allowed, caches told it varies by Origin."""
    headers = response.headers
    assert headers.get("access-control-allow-origin") == origin, dict(headers)
    assert headers.get("access-control-allow-credentials") == "true", dict(headers)
    assert "origin" in [v.strip().lower() for v in ",".join(headers.get_list("vary")).split(",")], dict(headers)


def anonymous(response: httpx.Response) -> None:
    """The credential-free answer: `*`, and never Access-Control-Allow-Credentials."""
    assert response.headers.get("access-control-allow-origin") == "*", dict(response.headers)
    assert "access-control-allow-credentials" not in response.headers, dict(response.headers)


def exposed(response: httpx.Response) -> set[str]:
    return {
        name.strip().lower()
        for name in ",".join(response.headers.get_list("access-control-expose-headers")).split(",")
        if name.strip()
    }


def edge_urls(gateway: str) -> dict[str, str]:
    good = token()
    return {
        "manifest": f"{gateway}{TITLE}master.m3u8?token={good}",
        "segment": f"{gateway}{TITLE}v1/seg_000.m4s?token={good}",
        "denial": f"{gateway}{TITLE}v1/seg_000.m4s?token=not-a-token",
        "origin_error": f"{gateway}{TITLE}v1/missing.m4s?token={good}",  # the origin's 404, passed on
    }


STATUS = {"manifest": 200, "segment": 200, "denial": 403, "origin_error": 404}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/sessions", "POST"), ("/api/sessions/abc123/refresh", "POST"), ("/api/sessions/abc123", "DELETE")],
)
def test_preflight_on_the_session_api_answers_204(gateway: str, path: str, method: str) -> None:
    response = httpx.options(
        gateway + path,
        headers={
            "origin": PLAYER,
            "access-control-request-method": method,
            "access-control-request-headers": "authorization,content-type",
        },
    )
    assert response.status_code == 204, (response.status_code, response.text)
    listed(response)
    methods = {m.strip().upper() for m in response.headers["access-control-allow-methods"].split(",")}
    assert method in methods
    allowed_headers = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert int(response.headers["access-control-max-age"]) > 0  # a player does not preflight every refresh


def test_preflight_from_an_unlisted_origin_gets_star_and_no_credentials(gateway: str) -> None:
    response = httpx.options(
        gateway + "/api/sessions",
        headers={
            "origin": STRANGER,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        },
    )
    assert response.status_code == 204
    anonymous(response)


def test_preflight_for_an_edge_range_request(gateway: str) -> None:
    response = httpx.options(
        edge_urls(gateway)["segment"],
        headers={"origin": PLAYER, "access-control-request-method": "GET", "access-control-request-headers": "range"},
    )
    assert response.status_code == 204, (response.status_code, response.text)
    listed(response)
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "range" in response.headers["access-control-allow-headers"].lower()


def test_session_api_answers_a_listed_origin_with_credentials_and_a_cross_site_cookie(gateway: str) -> None:
    created = httpx.post(
        gateway + "/api/sessions",
        json={"asset": "/cookie/vod/title-9000/master.m3u8"},
        headers={**VIEWER, "origin": OTHER_PLAYER},
    )
    assert created.status_code == 201, created.text
    listed(created, OTHER_PLAYER)
    assert "date" in exposed(created)  # the demo page reads the gateway's clock from it
    cookie = created.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert "SameSite=None" in cookie and {"secure", "partitioned", "httponly"} <= attributes, cookie
    refused = httpx.post(
        gateway + "/api/sessions", json={"asset": "/vod/title-9000/master.m3u8"}, headers={"origin": PLAYER}
    )
    assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
    listed(refused)  # the page can read why it was refused


@pytest.mark.parametrize("kind", list(STATUS))
def test_listed_origin_is_echoed_with_credentials_on_edge_responses(gateway: str, kind: str) -> None:
    response = httpx.get(edge_urls(gateway)[kind], headers={"origin": PLAYER})
    assert response.status_code == STATUS[kind], response.text
    listed(response)
    assert {"x-token-denial", "x-gateway-error"} <= exposed(response)
    if kind == "denial":
        assert response.headers["x-token-denial"] == "malformed"


@pytest.mark.parametrize("kind", list(STATUS))
@pytest.mark.parametrize("origin", [STRANGER, None, "null", PLAYER + ".evil.example", PLAYER.upper()])
def test_unlisted_or_missing_origin_gets_star_and_never_credentials(
    gateway: str, kind: str, origin: str | None
) -> None:
    headers = {"origin": origin} if origin else {}
    response = httpx.get(edge_urls(gateway)[kind], headers=headers)
    assert response.status_code == STATUS[kind], response.text
    anonymous(response)
    assert "x-token-denial" in exposed(response)  # query-mode players on any site still read refusals


def test_session_api_without_origin_or_unlisted_is_credential_free(gateway: str) -> None:
    for headers in ({}, {"origin": STRANGER}):
        created = httpx.post(
            gateway + "/api/sessions", json={"asset": "/vod/title-9000/master.m3u8"}, headers={**VIEWER, **headers}
        )
        assert created.status_code == 201, created.text
        anonymous(created)


def test_gateway_internals_are_not_opened_cross_site(gateway: str) -> None:
    health = httpx.get(gateway + "/_gateway/health", headers={"origin": PLAYER})
    assert health.status_code == 200 and "access-control-allow-origin" not in health.headers
