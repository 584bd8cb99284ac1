"""A native player that refreshes nothing reads whole VOD titles through the gateway (query mode).

ffmpeg loads the HLS master and media playlists (or the MPD) once and then fetches segments at real-time
pace (`-re`), so with a 2-second media TTL the last segments are fetched several token lifetimes after the
manifest was served. Every request must still be answered 200: media tokens in a manifest loaded once
live until the session's cap (gateway/tokens/scoped.py).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gateway.dev.demo import build_demo, build_demo_origin
from tests.support.recording import RecordingApp
from tests.support.servers import require_tool, serve_app

MEDIA_TTL = 2
PAID = {"authorization": "Bearer demo-paid"}
TITLES = {"hls": ("/vod/title-9000/master.m3u8", 12.0), "dash": ("/vod/dash-9000/manifest.mpd", 16.0)}


@pytest.mark.parametrize("kind", sorted(TITLES))
def test_ffmpeg_reads_a_whole_vod_title_across_many_media_token_lifetimes(tmp_path: Path, kind: str) -> None:
    ffmpeg = require_tool("ffmpeg")
    asset, duration = TITLES[kind]
    gateway = RecordingApp(None)
    with serve_app(build_demo_origin()) as origin:
        gateway.app = build_demo(
            tmp_path, origin, leeway_seconds=0, media_ttl_seconds=MEDIA_TTL, token_ttl_seconds=MEDIA_TTL
        )
        with serve_app(gateway) as url:
            session = httpx.post(url + "/api/sessions", json={"asset": asset}, headers=PAID)
            assert session.status_code == 201, session.text
            started = time.monotonic()
            playback_url = url + session.json()["playback_url"]
            result = subprocess.run(
                [ffmpeg, "-hide_banner", "-nostdin", "-re", "-i", playback_url, "-map", "0:v:0", "-f", "null", "-"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    refused = [seen for seen in gateway.seen if seen.status >= 400]
    assert refused == [], refused  # not one 403 (ffmpeg would skip a refused segment and carry on)
    read = max(float(s) for s in re.findall(r"time=\d\d:\d\d:(\d\d\.\d+)", result.stderr))
    assert read >= duration - 0.5, result.stderr[-1000:]  # the whole title was decoded
    assert elapsed > 4 * MEDIA_TTL  # the last segments came several media-token lifetimes after the manifest


DASH_TITLE = Path(__file__).resolve().parents[2] / "fixtures" / "media" / "vod" / "dash-9000"
DASH_MOUNTS = {"query": "/vod/", "hybrid": "/hybrid/vod/", "path": "/pathmode/vod/"}


@pytest.mark.parametrize("mode", sorted(DASH_MOUNTS))
def test_ffmpeg_reads_every_dash_representation_through_the_gateway(tmp_path: Path, mode: str) -> None:
    """A third-party DASH client, given only the session's playback URL, reads all four Representations.

    ffmpeg's DASH demuxer opens every Representation with `-map 0` (three video, one audio) and fetches each
    init and media segment once: every file of the bundled title must reach it through the gateway (200, or
    206 for ffmpeg's `Range: bytes=0-`). Query mode: the tokens the MPD carries; hybrid: the Set-Cookie of
    the signed MPD URL, which ffmpeg keeps for the segments; path: `/t/<token>/…`, inherited by the MPD's
    relative URIs.
    """
    ffmpeg = require_tool("ffmpeg")
    gateway = RecordingApp(None)
    asset = DASH_MOUNTS[mode] + "dash-9000/manifest.mpd"
    with serve_app(build_demo_origin()) as origin:
        gateway.app = build_demo(tmp_path, origin, leeway_seconds=0)
        with serve_app(gateway) as url:
            session = httpx.post(url + "/api/sessions", json={"asset": asset}, headers=PAID)
            assert session.status_code == 201, session.text
            playback_url = url + session.json()["playback_url"]
            result = subprocess.run(
                [ffmpeg, "-hide_banner", "-nostdin", "-i", playback_url, "-map", "0", "-f", "null", "-"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    assert result.returncode == 0, result.stderr[-2000:]
    title = DASH_MOUNTS[mode] + "dash-9000/"
    read = [seen for seen in gateway.seen if title in seen.path]
    assert [seen for seen in read if seen.status not in (200, 206)] == []  # ffmpeg asks with Range: bytes=0-
    streams = re.findall(r"Stream #0:\d+.*-> #0:\d+", result.stderr)
    assert len(streams) == 4, result.stderr[-2000:]  # v144, v216, v360 and a-en
    fetched = {seen.path.split(title, 1)[1] for seen in read}
    files = {str(p.relative_to(DASH_TITLE)) for p in DASH_TITLE.rglob("*") if p.is_file()}
    assert fetched == files, f"not fetched: {sorted(files - fetched)}, unexpected: {sorted(fetched - files)}"
    if mode == "query":
        assert all("token=" in seen.query for seen in read)
    if mode == "hybrid":  # only the MPD URL carries a token; the cookie it set opened the rest
        assert [seen.path for seen in read if "token=" in seen.query] == [title + "manifest.mpd"]


@pytest.mark.parametrize("kind", sorted(TITLES))
def test_ffmpeg_does_not_hand_on_a_queryparam_token_and_is_refused_cleanly(tmp_path: Path, kind: str) -> None:
    """ffmpeg (Debian's 5.1) implements neither EXT-X-DEFINE QUERYPARAM nor DASH UrlQueryInfo: in queryparam
    mode its media requests carry no token (HLS: the literal `{$token}`) and get a typed 401/403, never a
    500. The README's player table says so; when ffmpeg learns the standards, this test says so."""
    ffmpeg = require_tool("ffmpeg")
    asset = "/queryparam" + TITLES[kind][0]
    gateway = RecordingApp(None)
    with serve_app(build_demo_origin()) as origin:
        gateway.app = build_demo(tmp_path, origin)
        with serve_app(gateway) as url:
            session = httpx.post(url + "/api/sessions", json={"asset": asset}, headers=PAID)
            assert session.status_code == 201, session.text
            result = subprocess.run(
                [ffmpeg, "-hide_banner", "-nostdin", "-i", url + session.json()["playback_url"], "-f", "null", "-"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    assert result.returncode != 0
    statuses = {seen.status for seen in gateway.seen if not seen.path.startswith("/api/")}
    assert 200 in statuses and statuses <= {200, 401, 403}, statuses  # the manifest opened; then refusals
