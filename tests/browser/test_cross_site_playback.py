"""A player on another site: the demo page served from one origin plays through a gateway on another.

The gateway runs on http://127.0.0.1:G and the page on http://localhost:P: a different host, so Chromium
treats them as different *sites* (127.0.0.1:P would only be another origin of the same site, where a
SameSite cookie still flows). The page's `?gateway=` makes it call the gateway at its absolute URL, with
credentials in the cookie and hybrid modes (`credentials: 'include'`, hls.js `xhr.withCredentials`).

What the Chromium these tests drive (Debian's 156, headless, through playwright-core) does, measured:
- it blocks third-party cookies: a `SameSite=None; Secure` cookie set by the gateway for a page on another
  site is refused (DevTools reason `UserPreferences`), so it needs CHIPS `Partitioned`, which it accepts;
- it accepts `Secure` cookies over plain http from 127.0.0.1 (loopback is "potentially trustworthy").
So the gateway here is configured as a cross-site deployment should be: `cookie_same_site = "None"`,
`cookie_partitioned = true`, and the page's origin in `[cors] allowed_origins`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from gateway.dev.demo import build_demo, build_demo_origin, demo_page_routes
from gateway.http.cors import CorsPolicy
from tests.browser import test_demo_playback as vod
from tests.support.servers import free_port, serve_app

pytestmark = pytest.mark.browser

node = vod.node  # the VOD browser tests' session fixture (node, npm, chromium; `npm ci` done)

PAID_USER = vod.PAID_USER


@contextlib.contextmanager
def page_site(port: int) -> Iterator[str]:
    """The same page files on another site: http://localhost:<port> (the server listens on 127.0.0.1)."""
    with serve_app(Starlette(routes=demo_page_routes()), port=port):
        yield f"http://localhost:{port}"


@contextlib.contextmanager
def cross_site_gateway(state_dir: Path, origin_url: str, listed: str, *, partitioned: bool) -> Iterator[vod.Demo]:
    gateway = build_demo(
        state_dir,
        origin_url,
        cors=CorsPolicy(frozenset({listed})),
        cookie_same_site="None",
        cookie_partitioned=partitioned,
    )
    with serve_app(gateway) as url:
        catalog = httpx.get(f"{url}/api/demo/catalog", timeout=10).json()
        yield vod.Demo(url, catalog)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[vod.Demo, str, str, str]]:
    """(gateway, the demo origin's URL, a page site listed in [cors], a page site that is not)."""
    listed_port, unlisted_port = free_port(), free_port()
    listed = f"http://localhost:{listed_port}"
    with serve_app(build_demo_origin()) as origin_url:
        state = tmp_path_factory.mktemp("cross-site-state")
        with (
            cross_site_gateway(state, f"{origin_url}/", listed, partitioned=True) as gateway,
            page_site(listed_port) as listed_page,
            page_site(unlisted_port) as unlisted_page,
        ):
            yield gateway, f"{origin_url}/", listed_page, unlisted_page


def assert_cross_site(result: dict[str, Any], gateway: vod.Demo, page: str) -> None:
    """The page really came from the other site and every API and media request went to the gateway."""
    assert urlsplit(result["page_url"]).netloc == urlsplit(page).netloc
    to_gateway = [r for r in result["requests"] if urlsplit(r["url"]).netloc == urlsplit(gateway.url).netloc]
    assert any(r["method"] == "POST" and urlsplit(r["url"]).path == "/api/sessions" for r in to_gateway)
    assert urlsplit(page).hostname != urlsplit(gateway.url).hostname  # another site, not only another port
    # A CORS block shows up only on the console ("… has been blocked by CORS policy") and as a failed request.
    assert [e for e in result["console_errors"] if "CORS" in e or "cookie" in e.lower()] == []


@pytest.mark.parametrize("mode", ["cookie", "hybrid"])
def test_player_on_another_site_plays_cookie_modes_with_credentials(
    node: str,
    sites: tuple[vod.Demo, str, str, str],
    record_property: vod.RecordProperty,
    mode: str,
) -> None:
    gateway, _, page, _ = sites
    result = vod.play(
        node, gateway, "--page", page, "--user", PAID_USER, "--asset", gateway.asset(paid=True, mode=mode)
    )
    vod.assert_clean_playback(result, record_property)  # > 5 s played, no HTTP >= 400, no failed request
    assert_cross_site(result, gateway, page)
    assert result["T"]["session"]["mode"] == mode
    requests = vod.media_requests(result, gateway.mount(mode))
    # Credentialed answers: the page's origin echoed, credentials allowed, on every playlist, key, segment.
    assert {(r["cors"]["allow_origin"], r["cors"]["allow_credentials"]) for r in requests} == {(page, "true")}
    assert {r["status"] for r in requests} == {200}
    tokenized = [r["url"] for r in requests if vod.token_of(r["url"])]
    if mode == "cookie":
        assert tokenized == []
    else:  # hybrid: the signed master URL only; it is exchanged for the cookie
        assert tokenized == [requests[0]["url"]] and urlsplit(requests[0]["url"]).path.endswith("master.m3u8")
    assert all(r.get("cookie") for r in requests[1 if mode == "hybrid" else 0 :]), "the cookie went cross-site"
    assert [c for c in result["cookies"] if c["name"] == "gw_token" and c["httpOnly"]], result["cookies"]


def test_query_mode_plays_from_a_site_the_gateway_does_not_list(
    node: str, sites: tuple[vod.Demo, str, str, str], record_property: vod.RecordProperty
) -> None:
    gateway, _, _, unlisted = sites
    result = vod.play(node, gateway, "--page", unlisted, "--user", PAID_USER, "--asset", gateway.asset(paid=True))
    vod.assert_clean_playback(result, record_property)
    assert_cross_site(result, gateway, unlisted)
    requests = vod.media_requests(result, gateway.mount("query"))
    # No credentials involved: `*`, and never Access-Control-Allow-Credentials.
    assert {(r["cors"]["allow_origin"], r["cors"]["allow_credentials"]) for r in requests} == {("*", None)}
    assert all(vod.token_of(r["url"]) for r in requests)
    assert not any(r.get("cookie") for r in requests)


def test_without_partitioned_the_cross_site_cookie_is_refused_and_the_page_reads_why(
    node: str, sites: tuple[vod.Demo, str, str, str], tmp_path: Path
) -> None:
    # The same deployment without CHIPS: this Chromium drops the third-party cookie, so the first cookie-mode
    # request reaches the gateway without it. The refusal carries the echoed CORS headers, so the page can
    # read its status and `x-token-denial` (a refusal without them looks like a network error).
    _, origin_url, _, _ = sites
    port = free_port()
    listed = f"http://localhost:{port}"
    with (
        cross_site_gateway(tmp_path, origin_url, listed, partitioned=False) as gateway,
        page_site(port) as page,
    ):
        asset = gateway.asset(paid=True, mode="cookie")
        result = vod.play(node, gateway, "--page", page, "--user", PAID_USER, "--asset", asset, "--expect-denial")
    assert result["cookies"] == [], "this Chromium accepted a third-party cookie: update the README's note"
    denial = result["denial"]
    assert denial["visible"] and denial["source"] == "media request", denial
    assert (denial["status"], denial["reason"]) == ("401", "missing"), denial
    assert result["failed_requests"] == [], "a refusal, not a CORS-blocked request"
