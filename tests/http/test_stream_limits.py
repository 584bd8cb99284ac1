"""Issue 14.1 and 14.4 on one gateway instance (in-memory counts), through a real uvicorn on 127.0.0.1:
`[sessions] max_streams` refuses or evicts streams with the typed denial `stream_limit`, also when a CDN
dialect serves the segments, and `[sharing]` detects and revokes a session used from too many networks."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from prometheus_client import REGISTRY

from gateway.config import Route, Settings
from gateway.dev.demo import MEDIA_ROOT, demo_settings
from gateway.http.app import build_app
from gateway.sessions.sharing import SharingPolicy
from gateway.tokens.dialects import load_dialect
from tests.support.clock import FakeClock
from tests.support.servers import serve_app, static_origin
from tests.support.streams import fetch_media_playlist, start_session

CDN_BASE = "https://cdn.example.net/vod/"


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with static_origin(MEDIA_ROOT) as (url, _):
        yield url


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def gateway(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    with serve_app(build_app(settings, clock=clock)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


@pytest.fixture
async def limited(origin: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest) -> Any:
    on_limit = getattr(request, "param", "block_new")
    settings = demo_settings(tmp_path, origin, max_streams=2, on_limit=on_limit, stream_idle_seconds=60)
    async for client in gateway(settings, clock):
        yield client


async def test_a_third_stream_is_refused_with_stream_limit_until_one_ends(
    limited: httpx.AsyncClient, clock: FakeClock
) -> None:
    refusals = metric("gateway_stream_limit_refusals_total", outcome="blocked")
    first, second = [(await start_session(limited)).json() for _ in range(2)]
    for session in (first, second):
        assert (await fetch_media_playlist(limited, session)).status_code == 200
    third = await start_session(limited)
    assert third.status_code == 403 and third.headers["x-token-denial"] == "stream_limit"
    assert third.json()["error"] == "stream_limit" and "max_streams = 2" in third.json()["detail"]
    assert metric("gateway_stream_limit_refusals_total", outcome="blocked") == refusals + 1
    assert metric("gateway_streams_active") == 2
    # Ending a session (the page's stop button revokes it) frees its slot at once.
    ended = await limited.request("DELETE", f"/api/sessions/{first['session_id']}", json={"token": first["token"]})
    assert ended.status_code == 204
    clock.advance(1)
    assert (await start_session(limited)).status_code == 201


async def test_a_player_that_stops_fetching_frees_its_slot_after_the_idle_grace(
    limited: httpx.AsyncClient, clock: FakeClock
) -> None:
    paused, playing = [(await start_session(limited)).json() for _ in range(2)]
    for _ in range(6):  # `playing` reloads its playlists; `paused` fetches nothing more
        clock.advance(10)
        assert (await fetch_media_playlist(limited, playing)).status_code == 200
    clock.advance(1)
    assert (await start_session(limited)).status_code == 201  # `paused`: not seen for 61 s, its slot is free
    resumed = await fetch_media_playlist(limited, paused)
    assert resumed.status_code == 403 and resumed.json()["error"] == "stream_limit"


async def test_segments_served_by_the_gateway_keep_a_vod_stream_alive(
    limited: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A VOD player loads its playlists once; when the gateway serves the segments, they are its heartbeats."""
    watching, paused = [(await start_session(limited)).json() for _ in range(2)]
    playlist = await fetch_media_playlist(limited, watching)
    segments = [line for line in playlist.text.splitlines() if ".ts?" in line]
    for index in range(7):  # a segment every 10 s, no playlist reload
        clock.advance(10)
        segment = await limited.get(urljoin(str(playlist.url), segments[index % len(segments)]))
        assert segment.status_code == 200
    clock.advance(1)
    assert (await start_session(limited)).status_code == 201  # `paused` was idle for 71 s: its slot is free
    refused = await start_session(limited)  # `watching` and the newcomer: two alive
    assert refused.status_code == 403 and refused.json()["error"] == "stream_limit"
    assert (await fetch_media_playlist(limited, paused)).json()["error"] == "stream_limit"


@pytest.mark.parametrize("limited", ["evict_oldest"], indirect=True)
async def test_evict_oldest_ends_the_least_recently_seen_stream(limited: httpx.AsyncClient, clock: FakeClock) -> None:
    evictions = metric("gateway_stream_limit_refusals_total", outcome="evicted")
    oldest, other = [(await start_session(limited)).json() for _ in range(2)]
    clock.advance(5)
    assert (await fetch_media_playlist(limited, other)).status_code == 200
    newest = await start_session(limited)
    assert newest.status_code == 201
    evicted = await fetch_media_playlist(limited, oldest)
    assert evicted.status_code == 403 and evicted.headers["x-token-denial"] == "stream_limit"
    assert "ended" in evicted.json()["detail"]
    assert (await fetch_media_playlist(limited, other)).status_code == 200
    assert (await fetch_media_playlist(limited, newest.json())).status_code == 200
    assert metric("gateway_stream_limit_refusals_total", outcome="evicted") == evictions + 1


async def test_the_limit_holds_when_a_cdn_dialect_serves_the_segments(
    origin: str, tmp_path: Path, clock: FakeClock
) -> None:
    akamai = load_dialect("akamai", {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts"})
    cdn_route = Route(mount="/vod/", origin=origin + "vod/", cdn="akamai", cdn_base_url=CDN_BASE)
    settings = dataclasses.replace(
        demo_settings(tmp_path, origin, max_streams=2, on_limit="evict_oldest"),
        routes=(cdn_route,),
        dialects={"akamai": akamai},
    )
    async for client in gateway(settings, clock):
        oldest, other = [(await start_session(client)).json() for _ in range(2)]
        playlist = await fetch_media_playlist(client, oldest)
        segments = [line for line in playlist.text.splitlines() if line.endswith(".ts") or ".ts?" in line]
        assert segments and all(line.startswith(CDN_BASE) and "hdnts=" in line for line in segments)
        clock.advance(5)
        assert (await fetch_media_playlist(client, other)).status_code == 200
        assert (await start_session(client)).status_code == 201  # evicts `oldest`: seen least recently
        refused = await fetch_media_playlist(client, oldest)
        assert refused.status_code == 403 and refused.json()["error"] == "stream_limit"


async def test_a_session_seen_from_too_many_networks_is_reported_and_revoked(
    origin: str, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(
        demo_settings(tmp_path, origin),
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),  # the test tells the client address
        sharing=SharingPolicy(max_networks=2, window_seconds=600, revoke=True),
    )
    detected = metric("gateway_sharing_detected_total", revoked="true")
    caplog.set_level(logging.WARNING, "gateway.sessions.streams")
    async for client in gateway(settings, clock):
        session = (await start_session(client, forwarded_for="198.51.100.7")).json()
        for address in ("198.51.100.200", "2001:db8:1:2::9", "2001:db8:1:3::9"):  # two networks, /24 and /48
            assert (await fetch_media_playlist(client, session, forwarded_for=address)).status_code == 200
        third = await fetch_media_playlist(client, session, forwarded_for="203.0.113.5")
        assert third.status_code == 403 and third.json()["error"] == "revoked"
        assert "3 client networks" in third.json()["detail"]
        home = await fetch_media_playlist(client, session, forwarded_for="198.51.100.7")
        assert home.status_code == 403 and home.json()["error"] == "revoked"  # the session is over everywhere
    assert metric("gateway_sharing_detected_total", revoked="true") == detected + 1
    logged = [r.getMessage() for r in caplog.records]
    events = [json.loads(line.split(" ", 1)[1]) for line in logged if line.startswith("sharing_detected ")]
    assert events == [
        {
            "event": "sharing_detected",
            "session": session["session_id"],
            "user": "u-paid",
            "networks": 3,
            "max_networks": 2,
            "window_seconds": 600,
            "latest_network": "203.0.113.0/24",
            "revoked": True,
        }
    ]


async def test_sharing_without_revoke_only_reports(origin: str, tmp_path: Path, clock: FakeClock) -> None:
    settings = dataclasses.replace(
        demo_settings(tmp_path, origin),
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        sharing=SharingPolicy(max_networks=1, window_seconds=600),
    )
    detected = metric("gateway_sharing_detected_total", revoked="false")
    async for client in gateway(settings, clock):
        session = (await start_session(client, forwarded_for="198.51.100.7")).json()
        for address in ("203.0.113.5", "192.0.2.1"):
            assert (await fetch_media_playlist(client, session, forwarded_for=address)).status_code == 200
    assert metric("gateway_sharing_detected_total", revoked="false") == detected + 1
