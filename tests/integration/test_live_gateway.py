"""Live streams through the gateway: LL-HLS directives, rendition reports, delta updates, key rotation,
and a native player (ffmpeg, no JavaScript) reading the live stream across many token lifetimes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import m3u8
import pytest

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import DeltaUpdates
from gateway.dev.demo import DEMO_USERS, LIVE_TITLE, MEDIA_ROOT, build_demo, build_demo_origin
from gateway.dev.live_origin import LiveConfig, LiveStream, LowLatencyConfig, SimulatedClock, load_vod_source
from gateway.dev.live_origin.server import build_live_app
from gateway.http.app import build_app
from gateway.sessions.entitlements import CatalogEntitlements
from gateway.tokens.keys import HmacKey, KeyRing
from tests.support.recording import RecordingApp
from tests.support.servers import require_tool, serve_app

START = 1_800_000_000.0
PAID = {"authorization": "Bearer demo-paid"}
SOURCE = load_vod_source(MEDIA_ROOT / "vod" / "title-9000")


def live_stack(clock: SimulatedClock, *, delta_updates: str = "pass") -> tuple[httpx.AsyncClient, RecordingApp]:
    config = LiveConfig(
        start_time=START - 30,
        ll_hls=LowLatencyConfig(part_target_seconds=0.5),
        key_rotation_every=3,
        dvr_window_seconds=60,
    )
    origin = RecordingApp(build_live_app(LiveStream(config, SOURCE), clock))
    settings = Settings(
        keys=KeyRing((HmacKey("k1", b"\x01" * 32),)),
        routes=(Route(mount="/live/", origin="http://origin.test/live/"),),
        sessions=SessionSettings(media_ttl_seconds=10, token_ttl_seconds=10),
        catalog=CatalogEntitlements(DEMO_USERS, (LIVE_TITLE,)),
        delta_updates=DeltaUpdates(delta_updates),
    )
    app = build_app(settings, clock=clock, origin_transport=httpx.ASGITransport(app=origin))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test")
    return client, origin


@pytest.fixture
async def live() -> AsyncIterator[tuple[httpx.AsyncClient, RecordingApp, SimulatedClock, str]]:
    clock = SimulatedClock(START)
    client, origin = live_stack(clock)
    async with client:
        session = (
            await client.post("/api/sessions", json={"asset": "/live/title-9000/master.m3u8"}, headers=PAID)
        ).json()
        yield client, origin, clock, "http://gw.test" + session["playback_url"]


async def variant_urls(client: httpx.AsyncClient, master_url: str) -> list[str]:
    master = m3u8.loads((await client.get(master_url)).text)
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    return [urljoin(master_url, uri) for uri in uris]


async def test_ll_hls_directives_pass_through_and_never_reach_the_signature(
    live: tuple[httpx.AsyncClient, RecordingApp, SimulatedClock, str],
) -> None:
    client, origin, _, master_url = live
    media_url = (await variant_urls(client, master_url))[0]
    playlist = m3u8.loads((await client.get(media_url)).text)
    msn = playlist.media_sequence + len(playlist.segments) - 1
    response = await client.get(media_url + f"&_HLS_msn={msn}&_HLS_part=0")
    assert response.status_code == 200, response.text
    upstream = [s for s in origin.seen if "_HLS_msn" in s.query]
    assert upstream and all("token" not in s.query for s in origin.seen)
    assert parse_qs(upstream[-1].query) == {"_HLS_msn": [str(msn)], "_HLS_part": ["0"]}


async def test_rendition_reports_match_the_variant_urls_exactly(
    live: tuple[httpx.AsyncClient, RecordingApp, SimulatedClock, str],
) -> None:
    client, _, clock, master_url = live
    variants = await variant_urls(client, master_url)
    clock.advance(60)  # long after the master's own token expired
    text = (await client.get(variants[0])).text
    reports = [line.split('URI="')[1].split('"')[0] for line in text.splitlines() if "RENDITION-REPORT" in line]
    assert reports
    for report in reports:
        assert urljoin(variants[0], report) in variants  # hls.js matches report URLs to what it loaded


async def test_delta_updates_pass_or_full(live: tuple[httpx.AsyncClient, RecordingApp, SimulatedClock, str]) -> None:
    client, _, clock, master_url = live
    media_url = (await variant_urls(client, master_url))[0]
    clock.advance(40)
    assert "#EXT-X-SKIP" in (await client.get(media_url + "&_HLS_skip=YES")).text
    full_client, _ = live_stack(clock, delta_updates="full")
    async with full_client:
        session = (
            await full_client.post("/api/sessions", json={"asset": "/live/title-9000/master.m3u8"}, headers=PAID)
        ).json()
        url = (await variant_urls(full_client, "http://gw.test" + session["playback_url"]))[0]
        text = (await full_client.get(url + "&_HLS_skip=YES")).text
        assert "#EXT-X-SKIP" not in text and "#EXTINF" in text


async def test_rotated_keys_and_segments_flow_through_with_rolling_media_tokens(
    live: tuple[httpx.AsyncClient, RecordingApp, SimulatedClock, str],
) -> None:
    client, _, clock, master_url = live
    media_url = (await variant_urls(client, master_url))[1]
    tokens: set[str] = set()
    for _ in range(40):  # 80 s of stream time: eight 10-second media-token lifetimes
        playlist = m3u8.loads((await client.get(media_url)).text)
        last = playlist.segments[-1]
        for uri in (last.uri, last.key.uri if last.key else None):
            if uri:
                response = await client.get(urljoin(media_url, uri))
                assert response.status_code == 200, (uri, response.text)
                tokens.add(parse_qs(urlsplit(uri).query)["token"][0])
        clock.advance(2)
    assert len(tokens) >= 8  # media tokens rolled forward; nothing was refused


def test_ffmpeg_reads_live_through_the_gateway_across_token_lifetimes(tmp_path: Path) -> None:
    """A native player with no JavaScript: ffmpeg's HLS demuxer only reloads playlists."""
    ffmpeg = require_tool("ffmpeg")
    gateway = RecordingApp(build_demo(tmp_path, "http://placeholder/", media_ttl_seconds=3, token_ttl_seconds=3))
    with serve_app(build_demo_origin()) as origin:
        gateway.app = build_demo(tmp_path, origin, media_ttl_seconds=3, token_ttl_seconds=3)
        with serve_app(gateway) as url:
            session = httpx.post(url + "/api/sessions", json={"asset": "/live/title-9000/master.m3u8"}, headers=PAID)
            started = time.monotonic()
            result = subprocess.run(
                [
                    ffmpeg,
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-i",
                    url + session.json()["playback_url"],
                    "-t",
                    "20",
                    "-map",
                    "0:v:0",
                    "-f",
                    "null",
                    "-",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    media = [s for s in gateway.seen if not s.path.startswith("/api/")]
    assert media and all(s.status == 200 for s in media), [s for s in media if s.status != 200]
    media_tokens = {
        parse_qs(s.query)["token"][0] for s in gateway.seen if s.path.endswith(".ts") and "token=" in s.query
    }
    assert elapsed > 12 and len(media_tokens) >= 4  # several 3-second token lifetimes, zero refusals
