"""queryparam delivery plays in real players (Debian's Chromium): the manifests carry no token at all, and
the player hands the token from the manifest's own URL on to every request.

    HLS   hls.js and shaka-player read `#EXT-X-DEFINE:QUERYPARAM="token"` and substitute `{$token}` in every
          URI of the multivariant and media playlists (title-9000: AES-128 TS, alternate audio);
    DASH  dash.js and shaka-player read the MPD's `urn:mpeg:dash:urlparam:2016/2014` descriptors and append
          the MPD URL's query to every init and media segment request (dash-9000, static MPD).

Each case opens `players/plain.html` (no token logic of ours: no xhrSetup, request filter or interceptor)
on a queryparam session's playback URL, plays the title to its end at 2x, seeks back and plays on. It
fails on any player error event (but hls.js's known non-fatal startup pair on the TS title, tolerated in every
mode and recorded), any response >= 400 seen by the browser, and on any media request that
does not carry the session's token. Needs node, npm and /usr/bin/chromium: missing ones skip locally and
fail in CI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.config_schema import Delivery
from gateway.dev.demo import build_demo_origin, demo_routes, demo_settings
from gateway.http.app import build_app
from tests.browser import test_demo_playback as vod
from tests.browser import test_vod_no_refresh as no_refresh
from tests.support.servers import serve_app

pytestmark = pytest.mark.browser

node = vod.node
players = no_refresh.players

CASES = {
    "hlsjs-hls": ("hlsjs", "/queryparam/vod/title-9000/master.m3u8"),
    "shaka-hls": ("shaka", "/queryparam/vod/title-9000/master.m3u8"),
    "dashjs-dash": ("dashjs", "/queryparam/vod/dash-9000/manifest.mpd"),
    "shaka-dash": ("shaka", "/queryparam/vod/dash-9000/manifest.mpd"),
    # `[[routes]] request_param = true`: the MPD also carries the 6th edition's RequestParam (shaka reads it,
    # dash.js must not trip over it)
    "dashjs-dash-request-param": ("dashjs", "/queryparam/vod/dash-9000/manifest.mpd"),
    "shaka-dash-request-param": ("shaka", "/queryparam/vod/dash-9000/manifest.mpd"),
}
MANIFEST_SUFFIXES = (".m3u8", ".mpd")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    with vod.running_demo(tmp_path_factory.mktemp("queryparam")) as running:
        yield running


@pytest.fixture(scope="module")
def request_param_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    """The demo with `request_param = true` on its queryparam route."""
    with serve_app(build_demo_origin()) as origin_url:
        settings = demo_settings(tmp_path_factory.mktemp("queryparam-rp"), f"{origin_url}/")
        routes = tuple(
            dataclasses.replace(route, request_param=route.delivery is Delivery.QUERYPARAM) for route in settings.routes
        )
        app = build_app(dataclasses.replace(settings, routes=routes), extra_routes=demo_routes())
        with serve_app(app) as gateway_url:
            yield vod.Demo(gateway_url, {})


def start_session(demo: vod.Demo, asset: str) -> dict[str, Any]:
    started = httpx.post(
        f"{demo.url}/api/sessions",
        json={"asset": asset},
        headers={"authorization": f"Bearer {vod.PAID_USER}"},
        timeout=10,
    )
    assert started.status_code == 201, started.text
    session: dict[str, Any] = started.json()
    assert session["mode"] == "queryparam"
    return session


def startup_benign(player: str, error: dict[str, Any]) -> bool:
    """hls.js's known non-fatal pair on this TS title near media time 0 (at startup and right after the seek
    back to 0), in every delivery mode (see test_demo_playback.py); nothing else is tolerated."""
    return (
        player == "hlsjs"
        and error.get("details") in vod.STARTUP_BENIGN
        and not error.get("fatal")
        and float(error.get("media_time") or 0) <= vod.STARTUP_MEDIA_SECONDS
    )


def token_in(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("token")
    return values[0] if values else None


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_queryparam_plays_with_no_token_in_any_manifest(
    players: str, request: pytest.FixtureRequest, case_id: str, record_property: vod.RecordProperty
) -> None:
    player, asset = CASES[case_id]
    with_request_param = case_id.endswith("-request-param")
    demo: vod.Demo = request.getfixturevalue("request_param_demo" if with_request_param else "demo")
    session = start_session(demo, asset)
    src = str(session["playback_url"])
    # The manifest is the same for every viewer: another session gets the very same bytes.
    other = start_session(demo, asset)
    first = httpx.get(demo.url + src, timeout=10)
    assert first.content == httpx.get(demo.url + str(other["playback_url"]), timeout=10).content
    assert session["token"] not in first.text and first.headers["cache-control"].startswith("public, max-age=")
    assert ("<RequestParam " in first.text) is with_request_param

    query = {"player": player, "src": src, "rate": str(no_refresh.RATE), "buffer": str(no_refresh.BUFFER_SECONDS)}
    result = no_refresh.seek_back(players, f"{demo.url}/players/plain.html?{urlencode(query)}")
    summary = {k: result.get(k) for k in ("outcome", "phase", "error", "end", "final", "elapsed_ms")}
    record_property("wall_ms", result["elapsed_ms"])

    refused = [f"{r['status']} {r.get('denial')} {urlsplit(r['url']).path}" for r in result["bad_responses"]]
    assert refused == [], f"{case_id}: refused requests: {refused}\n{summary}"
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [] and result["page_errors"] == [], (failed, result["page_errors"])
    errors = (result["T"] or {}).get("errors", [])
    assert [e for e in errors if not startup_benign(player, e)] == [], f"{case_id}: player error events\n{summary}"
    if errors:  # reported, not hidden
        record_property("tolerated_hls_startup_errors", sorted({e["details"] for e in errors}))
    assert result["outcome"] == "played", summary

    prefix = asset.rsplit("/", 1)[0] + "/"
    title = [r for r in result["requests"] if urlsplit(r["url"]).path.startswith(prefix)]
    media = [r for r in title if not urlsplit(r["url"]).path.endswith(MANIFEST_SUFFIXES)]
    assert len(media) > 10, f"{case_id}: too few media requests ({len(media)})"
    wrong = [r["url"] for r in title if token_in(r["url"]) != session["token"]]
    assert wrong == [], f"{case_id}: requests without the session's token: {wrong[:5]}"
    if asset.endswith(".m3u8"):  # the media playlists were loaded through their substituted URIs
        assert sum(urlsplit(r["url"]).path.endswith(".m3u8") for r in title) >= 2
