"""`GET /_gateway/verdict`: who may ask, what a refusal looks like to nginx's auth_request, and what a 204
hands the front (the origin URL the gateway checked, the origin's auth header, a bounded reuse time)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.config import OriginSettings, Route, Settings
from gateway.http.app import build_app
from gateway.origin.auth import verify_origin_auth
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.servers import serve_app

RING = KeyRing((HmacKey("k1", b"\x07" * 32),))
ORIGIN_SECRET = b"\x09" * 32
LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)


def settings(trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOCAL) -> Settings:
    return Settings(
        keys=RING,
        routes=(Route(mount="/vod/", origin="http://origin.invalid/media/", forward_query=("v",)),),
        trusted_proxies=trusted,
        origin=OriginSettings(auth_secret=ORIGIN_SECRET),
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with serve_app(build_app(settings())) as url:
        yield url


def ask(base: str, target: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{base}/_gateway/verdict", headers={"x-original-uri": target, **headers})


def token(ttl: int = 600) -> str:
    return sign_grant(Grant(("/vod/t/",), int(time.time()) + ttl), RING)


def test_a_granted_request_gets_the_checked_origin_url_and_an_origin_auth_header(gateway: str) -> None:
    response = ask(gateway, f"/vod/t/a%20b.ts?junk=1&v=2&token={token()}")
    assert response.status_code == 204
    assert response.headers["x-origin-url"] == "http://origin.invalid/media/t/a%20b.ts?v=2"  # no token, no junk
    assert verify_origin_auth(
        response.headers["x-gateway-origin-auth"],
        ORIGIN_SECRET,
        method="GET",
        target="/media/t/a%20b.ts?v=2",
        now=time.time(),
    )
    assert response.headers["cache-control"] == "max-age=5"


def test_reuse_never_outlives_the_token(gateway: str) -> None:
    expires_at = int(time.time()) + 3
    answer = ask(gateway, f"/vod/t/x.ts?token={sign_grant(Grant(('/vod/t/',), expires_at), RING)}")
    max_age = int(answer.headers["cache-control"].removeprefix("max-age="))
    assert 0 < max_age <= expires_at - int(time.time()) + 1 <= 4  # the token's remaining life, never the 5 s cap


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("/vod/t/master.m3u8?token={token}", "400", "front_misrouted"),  # manifests belong to the gateway
        ("/nowhere/x.ts?token={token}", "404", "no_route"),
        ("x.ts", "400", "bad_request"),
    ],
)
def test_other_refusals_are_403_with_their_own_status_for_auth_request(
    gateway: str, target: str, status: str, code: str
) -> None:
    response = ask(gateway, target.format(token=token()))
    assert response.status_code == 403
    assert (response.headers["x-verdict-status"], response.headers["x-gateway-error"]) == (status, code)
    assert response.json()["error"] == code


def test_denials_pass_as_they_are(gateway: str) -> None:
    response = ask(gateway, "/vod/t/x.ts")
    assert (response.status_code, response.headers["x-token-denial"]) == (401, "missing")
    assert "x-verdict-status" not in response.headers


def test_only_trusted_proxies_may_ask() -> None:
    with serve_app(build_app(settings(trusted=()))) as url:
        response = ask(url, f"/vod/t/x.ts?token={token()}")
    assert (response.status_code, response.headers["x-gateway-error"]) == (403, "front_only")
