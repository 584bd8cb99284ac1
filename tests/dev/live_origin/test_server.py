"""The live origin over HTTP (ASGI in-process), on a simulated clock; plus one real CLI run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin

import httpx
import m3u8
import pytest
from starlette.applications import Starlette

from gateway.dev.live_origin import LiveConfig, LiveStream, LowLatencyConfig, SimulatedClock, load_vod_source
from gateway.dev.live_origin.crypto import decrypt_aes128, sequence_iv
from gateway.dev.live_origin.server import build_live_app, build_live_origin
from tests.support.paths import REPO
from tests.support.servers import free_port

TITLE = REPO / "fixtures" / "media" / "vod" / "title-9000"
DASH_TITLE = REPO / "fixtures" / "media" / "vod" / "dash-9000"
START = 1_750_000_000.0
NOW = START + 3 * 3600 + 0.1  # three hours in, 0.1 s into a segment: no part of it exists yet
BASE = "http://origin.test/live/title-9000/"
CONFIG = LiveConfig(
    start_time=START,
    key_rotation_every=4,
    dvr_window_seconds=40.0,
    ll_hls=LowLatencyConfig(part_target_seconds=0.5),
)


@pytest.fixture(scope="module")
def live() -> LiveStream:
    return LiveStream(CONFIG, load_vod_source(TITLE))


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def client(live: LiveStream, clock: SimulatedClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_live_app(live, clock)) as http:
        yield http


async def until_blocked(clock: SimulatedClock, task: asyncio.Task[Any], waiters: int = 1) -> None:
    for _ in range(200):
        if clock.pending_waiters >= waiters:
            return
        assert not task.done(), task.result()
        await asyncio.sleep(0)
    raise AssertionError("the request never blocked on the clock")


async def test_master_and_every_rendition_are_served_as_playlists(client: httpx.AsyncClient) -> None:
    response = await client.get("master.m3u8")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    master = m3u8.loads(response.text)
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media]
    assert len(uris) == 5
    for uri in uris:
        media = await client.get(uri)
        assert media.status_code == 200 and media.headers["cache-control"] == "max-age=1"
        assert media.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert m3u8.loads(media.text).media_sequence > 5000


async def test_segments_parts_and_keys_decrypt_end_to_end(client: httpx.AsyncClient) -> None:
    playlist_url = urljoin(BASE, "v360/index.m3u8")
    playlist = m3u8.loads((await client.get(playlist_url)).text)
    segments = [s for s in playlist.segments if s.uri is not None]
    for segment in segments[-5:]:
        msn = int(segment.uri.removeprefix("seg").removesuffix(".ts"))
        key = await client.get(urljoin(playlist_url, segment.key.uri))
        assert key.headers["content-type"] == "application/octet-stream" and len(key.content) == 16
        media = await client.get(urljoin(playlist_url, segment.uri))
        assert media.headers["content-type"] == "video/mp2t"
        clear = decrypt_aes128(media.content, key.content, sequence_iv(msn))
        assert clear[0] == 0x47
        parts = [await client.get(urljoin(playlist_url, part.uri)) for part in segment.parts]
        assert [decrypt_aes128(p.content, key.content, sequence_iv(msn))[0] for p in parts] == [0x47] * len(parts)
        # Parts are listed for segments that started within 3 target durations (6 s) of now.
        assert len(parts) == (4 if segment in segments[-2:] else 0)


@pytest.mark.parametrize(
    "path",
    [
        "v144/seg5401.ts",  # in production: not available yet
        "v144/seg5400.part0.ts",  # its first part ends 0.4 s from now
        "v144/seg5399.part4.ts",  # only 4 parts per segment
        "keys/9999.key",  # not in use yet
        "v9000/index.m3u8",
        "../other-title/master.m3u8",
    ],
)
async def test_what_does_not_exist_is_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


@pytest.mark.parametrize(
    "query",
    ["_HLS_msn=5403", "_HLS_part=1", "_HLS_msn=x", "_HLS_msn=5400&_HLS_part=-1", "_HLS_skip=NO"],
)
async def test_bad_delivery_directives_are_400(client: httpx.AsyncClient, query: str) -> None:
    assert (await client.get(f"v144/index.m3u8?{query}")).status_code == 400


async def test_blocking_reload_returns_as_soon_as_the_part_exists(
    client: httpx.AsyncClient, clock: SimulatedClock, live: LiveStream
) -> None:
    task = asyncio.create_task(client.get("v270/index.m3u8?_HLS_msn=5400&_HLS_part=1"))
    await until_blocked(clock, task)
    clock.advance(live.available_at(5400, 1) - clock() - 0.01)  # 10 ms short: part 0 only
    await asyncio.sleep(0.01)
    assert not task.done()
    clock.advance_to(live.available_at(5400, 1))
    response = await asyncio.wait_for(task, 5)
    assert response.status_code == 200
    assert re.findall(r'PART:.*URI="(seg\d+\.part\d+\.ts)"', response.text)[-1] == "seg5400.part1.ts"
    assert 'PRELOAD-HINT:TYPE=PART,URI="seg5400.part2.ts"' in response.text


async def test_blocking_reload_gives_up_with_503_after_the_bound(live: LiveStream, clock: SimulatedClock) -> None:
    async with client_for(build_live_app(live, clock, block_limit_seconds=0.2)) as client:
        task = asyncio.create_task(client.get("v144/index.m3u8?_HLS_msn=5400&_HLS_part=3"))
        await until_blocked(clock, task)
        clock.advance(0.25)  # past the bound, before the part (1.9 s away)
        response = await asyncio.wait_for(task, 5)
    assert response.status_code == 503


async def test_the_farthest_legal_target_is_within_the_default_bound(
    client: httpx.AsyncClient, clock: SimulatedClock
) -> None:
    # LAST-MSN is 5399 (no part of 5400 yet); 5401 = LAST-MSN + 2 ends in 3.9 s < 3 x 2 s.
    task = asyncio.create_task(client.get("v144/index.m3u8?_HLS_msn=5401"))
    await until_blocked(clock, task)
    clock.advance(3.0)
    await asyncio.sleep(0.01)
    assert not task.done()
    clock.advance(0.9)
    response = await asyncio.wait_for(task, 5)
    assert response.status_code == 200 and "\nseg5401.ts\n" in response.text
    assert (await client.get("v144/index.m3u8?_HLS_msn=5404")).status_code == 400  # LAST-MSN + 3


async def test_blocking_reload_polls_a_plain_callable_clock(live: LiveStream) -> None:
    now = [NOW]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    async with client_for(build_live_app(live, clock)) as client:
        task = asyncio.create_task(client.get("a-en/index.m3u8?_HLS_msn=5400&_HLS_part=0"))
        await asyncio.sleep(0.05)
        assert not task.done()
        now[0] = live.available_at(5400, 0)
        response = await asyncio.wait_for(task, 5)
    assert response.status_code == 200 and 'URI="seg5400.part0.ts"' in response.text


async def test_delta_update_over_http(client: httpx.AsyncClient) -> None:
    full = m3u8.loads((await client.get("a-fr/index.m3u8")).text)
    delta = m3u8.loads((await client.get("a-fr/index.m3u8?_HLS_msn=5399&_HLS_skip=YES")).text)
    skipped = delta.skip.skipped_segments
    assert skipped > 0 and delta.media_sequence == full.media_sequence
    assert [s.uri for s in full.segments[skipped:]] == [s.uri for s in delta.segments]
    v2 = await client.get("a-fr/index.m3u8?_HLS_skip=v2")
    assert 'RECENTLY-REMOVED-DATERANGES=""' in v2.text


async def test_rendition_reports_match_the_other_playlists(client: httpx.AsyncClient, clock: SimulatedClock) -> None:
    clock.advance(1.3)
    bodies = {name: (await client.get(f"{name}/index.m3u8")).text for name in ("v144", "a-en", "a-fr")}
    for name, body in bodies.items():
        for report in m3u8.loads(body).rendition_reports:
            other = report.uri.split("/")[1]
            if other in bodies:
                last = re.findall(r'PART:.*URI="seg(\d+)\.part(\d+)\.ts"', bodies[other])[-1]
                assert (report.last_msn, report.last_part) == (int(last[0]), int(last[1])), name


def test_build_live_origin_loads_the_source() -> None:
    app = build_live_origin(CONFIG, TITLE, stream_name="channel-1")
    assert app.state.stream_name == "channel-1"


def test_cli_serves_the_stream() -> None:
    port = free_port()
    command = [sys.executable, "-m", "gateway.dev.live_origin", "--source", str(TITLE), "--port", str(port)]
    with subprocess.Popen(
        [
            *command,
            "--ll-hls",
            "--key-rotation",
            "5",
            "--dvr",
            "60",
            "--dash-source",
            str(DASH_TITLE),
            "--dash-patch-ttl",
            "60",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().split(" ")[-1]
            assert url == f"http://127.0.0.1:{port}/live/title-9000/master.m3u8"
            master = get_when_up(url)
            media = httpx.get(urljoin(url, m3u8.loads(master.text).playlists[0].uri), timeout=2)
            playlist = m3u8.loads(media.text)
            assert len([s for s in playlist.segments if s.uri]) == 30 and playlist.part_inf is not None
            mpd_url = process.stdout.readline().strip().split(" ")[-1]
            assert mpd_url == f"http://127.0.0.1:{port}/live/dash-9000/manifest.mpd"
            mpd = httpx.get(mpd_url, timeout=2)
            assert mpd.status_code == 200 and 'type="dynamic"' in mpd.text and "<PatchLocation" in mpd.text
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)


def get_when_up(url: str) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
