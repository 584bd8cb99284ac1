"""Media tokens follow what the player can refresh (gateway/tokens/scoped.py), end to end in simulated time.

A player that refreshes nothing (shaka, dash.js, Safari, smart TVs, ffmpeg) loads a VOD playlist or a
static MPD once and uses its URIs for the whole film: they must work until the session's cap. A live
playlist or a dynamic MPD is reloaded, so what it carries stays short and rolls forward.

The demo gateway runs in-process with an injected clock (media TTL 5 min, session cap 4 h) in front of a
real HTTP origin on 127.0.0.1 serving a synthetic three-hour film (HLS and DASH) and a live title.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from gateway.dev.demo import build_demo
from gateway.tokens.native import inspect_token
from tests.sessions.test_viewing_sessions import PAID, start, uris
from tests.support.clock import FakeClock
from tests.support.origin_tree import write
from tests.support.servers import static_origin

MEDIA_TTL = 300
SEGMENT_SECONDS = 10
FILM_SEGMENTS = 3 * 3600 // SEGMENT_SECONDS  # a three-hour film
BASE = "http://127.0.0.1"
MPD_NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'


def vod_playlist(segments: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}", "#EXT-X-PLAYLIST-TYPE:VOD"]
    lines += ['#EXT-X-KEY:METHOD=AES-128,URI="../key.key"', '#EXT-X-MAP:URI="init.mp4"']
    for index in range(segments):
        lines += [f"#EXTINF:{SEGMENT_SECONDS}.0,", f"seg_{index:04d}.m4s"]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


def live_playlist() -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:100", '#EXT-X-MAP:URI="init.mp4"']
    for index in range(100, 103):
        lines += ["#EXTINF:2.0,", f"seg_{index}.m4s"]
    return "\n".join([*lines, ""])  # no EXT-X-ENDLIST: the player reloads it


def mpd(kind: str, segments: int) -> str:
    return (
        f'<?xml version="1.0"?>\n<MPD {MPD_NS} {kind} profiles="urn:mpeg:dash:profile:isoff-live:2011">'
        '<Period id="p0" start="PT0S"><AdaptationSet mimeType="video/mp4" contentType="video">'
        f'<SegmentTemplate media="dash/seg_$Number%04d$.m4s" initialization="dash/init.mp4" '
        f'duration="{SEGMENT_SECONDS}" startNumber="1"/>'
        f'<Representation id="v1" bandwidth="100000" codecs="avc1.4d401e"/></AdaptationSet></Period></MPD>\n'
    )


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("origin")
    film = "vod/title-9000/"
    write(
        root,
        film + "master.m3u8",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000\nv1/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=900000\nv2/index.m3u8\n",
    )
    write(root, film + "key.key", b"k" * 16)
    for rendition in ("v1", "v2"):
        write(root, f"{film}{rendition}/index.m3u8", vod_playlist(FILM_SEGMENTS))
        write(root, f"{film}{rendition}/init.mp4", f"init {rendition}")
        for index in range(FILM_SEGMENTS):
            write(root, f"{film}{rendition}/seg_{index:04d}.m4s", f"{rendition} {index}")
    write(root, film + "manifest.mpd", mpd("", FILM_SEGMENTS))  # @type absent: static
    write(root, film + "dash/init.mp4", "dash init")
    for number in range(1, FILM_SEGMENTS + 1):
        write(root, f"{film}dash/seg_{number:04d}.m4s", f"dash {number}")
    live = "live/title-9000/"
    write(root, live + "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000\nv1/index.m3u8\n")
    write(root, live + "v1/index.m3u8", live_playlist())
    write(root, live + "v1/init.mp4", "live init")
    for index in range(100, 103):
        write(root, f"{live}v1/seg_{index}.m4s", f"live {index}")
    dynamic = 'type="dynamic" availabilityStartTime="2020-01-01T00:00:00Z" minimumUpdatePeriod="PT2S"'
    write(root, live + "live.mpd", mpd(dynamic, 3))
    write(root, live + "dash/init.mp4", "live dash init")
    for number in range(1, 4):
        write(root, f"{live}dash/seg_{number:04d}.m4s", f"live dash {number}")
    with static_origin(root) as (url, _):
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(origin: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = build_demo(tmp_path, origin, clock=clock, media_ttl_seconds=MEDIA_TTL, token_ttl_seconds=MEDIA_TTL)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def template_urls(mpd_text: str, mpd_url: str, numbers: range) -> tuple[str, list[str]]:
    """The init URL and the media URLs a DASH player derives from the served SegmentTemplate."""
    media = mpd_text.split('media="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    init = mpd_text.split('initialization="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return urljoin(mpd_url, init), [urljoin(mpd_url, media.replace("$Number%04d$", f"{n:04d}")) for n in numbers]


async def statuses(client: httpx.AsyncClient, urls: list[str]) -> dict[str, int]:
    """Every URL that did not answer 200, with its status."""
    refused = {}
    for url in urls:
        response = await client.get(url)
        if response.status_code != 200:
            refused[url] = response.status_code
    return refused


async def test_a_three_hour_vod_film_plays_to_its_end_and_back_with_a_five_minute_media_ttl(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    session = await start(client)
    started = clock.now
    master_url = BASE + str(session["playback_url"])
    v1, v2 = uris((await client.get(master_url)).text, master_url)
    media_playlist = await client.get(v1)  # loaded once: a VOD player never asks again
    assert media_playlist.status_code == 200
    key, init, *segments = _key_init_segments(media_playlist.text, v1)
    assert len(segments) == FILM_SEGMENTS
    media_token = inspect_token(token_of(segments[0]))
    assert media_token.scope == "media" and media_token.expires_at == session["session_ends_at"]

    refused: dict[str, int] = {}
    for index, segment in enumerate(segments):  # the whole film at 1x, in simulated time
        clock.now = started + 1 + index * SEGMENT_SECONDS
        refused |= await statuses(client, [segment] + ([key, init] if index % 180 == 0 else []))
        if index == FILM_SEGMENTS * 2 // 3:  # at 2 h, switch to the rendition never loaded
            switched = await client.get(v2)
            assert switched.status_code == 200, switched.text
            refused |= await statuses(client, _key_init_segments(switched.text, v2)[:3])
    assert refused == {}
    assert clock.now - started > 2.9 * 3600  # 35 media-token lifetimes later...
    assert await statuses(client, [segments[0], key, init]) == {}  # ...the seek back to the start plays

    clock.now = int(str(session["session_ends_at"])) + 10.0  # past the 5 s clock-skew leeway
    response = await client.get(segments[-1])
    assert response.status_code == 403 and response.json()["error"] == "expired"  # the session's cap ends it


def _key_init_segments(text: str, url: str) -> list[str]:
    """Key, init section and segment URLs of a media playlist, resolved against `url`."""
    key = text.split('#EXT-X-KEY:METHOD=AES-128,URI="', 1)[1].split('"', 1)[0]
    init = text.split('#EXT-X-MAP:URI="', 1)[1].split('"', 1)[0]
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return [urljoin(url, u) for u in (key, init, *lines)]


async def test_a_static_mpd_serves_its_templates_until_the_session_cap(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    session = await start(client, "/vod/title-9000/manifest.mpd")
    mpd_url = BASE + str(session["playback_url"])
    served = await client.get(mpd_url)
    assert served.status_code == 200
    init, media = template_urls(served.text, mpd_url, range(1, FILM_SEGMENTS + 1))
    assert inspect_token(token_of(init)).expires_at == session["session_ends_at"]
    clock.advance(3 * 3600 - 60)  # the last minute of the film, 36 media TTLs after the MPD was served
    assert await statuses(client, [init, media[-1], media[0]]) == {}


async def test_revocation_still_ends_a_long_vod_token(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await start(client)
    master_url = BASE + str(session["playback_url"])
    v1 = uris((await client.get(master_url)).text, master_url)[0]
    segment = _key_init_segments((await client.get(v1)).text, v1)[2]
    clock.advance(3600)
    assert (await client.get(segment)).status_code == 200
    revoke = await client.request("DELETE", f"/api/sessions/{session['session_id']}", json={"token": session["token"]})
    assert revoke.status_code == 204
    response = await client.get(segment)
    assert response.status_code == 403 and response.json()["error"] == "revoked"


async def test_ip_binding_still_holds_a_long_vod_token(origin: str, tmp_path: Path, clock: FakeClock) -> None:
    app = build_demo(tmp_path, origin, clock=clock, media_ttl_seconds=MEDIA_TTL, ip_binding=True)
    viewer = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=viewer, base_url=BASE) as c:
        session = await start(c)
        master_url = BASE + str(session["playback_url"])
        v1 = uris((await c.get(master_url)).text, master_url)[0]
        segment = _key_init_segments((await c.get(v1)).text, v1)[2]
        clock.advance(3600)
        assert (await c.get(segment)).status_code == 200
    thief = httpx.ASGITransport(app=app, client=("198.51.100.1", 5000))
    async with httpx.AsyncClient(transport=thief, base_url=BASE) as c:
        response = await c.get(segment)
        assert response.status_code == 403 and response.json()["error"] == "ip"


async def test_live_playlists_keep_short_rolling_media_tokens(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await start(client, "/live/title-9000/master.m3u8", headers=PAID)
    master_url = BASE + str(session["playback_url"])
    variant = uris((await client.get(master_url)).text, master_url)[0]
    bucket = MEDIA_TTL // 2
    clock.advance(10 - clock.now % bucket)  # 10 s into a bucket
    first = (await client.get(variant)).text
    segment = uris(first, variant)[0]
    life = inspect_token(token_of(segment)).expires_at - clock.now
    assert MEDIA_TTL <= life <= MEDIA_TTL + bucket
    clock.advance(1)
    assert (await client.get(variant)).text == first  # stable URI strings within a bucket
    assert (await client.get(segment)).status_code == 200

    clock.advance(MEDIA_TTL + bucket)  # the old segment URL dies...
    response = await client.get(segment)
    assert response.status_code == 403 and response.json()["error"] == "expired"
    reloaded = (await client.get(variant)).text  # ...and the reload carries a fresh one
    assert reloaded != first
    assert (await client.get(uris(reloaded, variant)[0])).status_code == 200


async def test_dynamic_mpds_keep_short_rolling_media_tokens(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await start(client, "/live/title-9000/live.mpd", headers=PAID)
    mpd_url = BASE + str(session["playback_url"])
    init, media = template_urls((await client.get(mpd_url)).text, mpd_url, range(1, 4))
    assert inspect_token(token_of(init)).expires_at <= clock.now + MEDIA_TTL * 1.5
    assert await statuses(client, [init, *media]) == {}
    clock.advance(MEDIA_TTL * 1.5 + 1)
    response = await client.get(media[0])
    assert response.status_code == 403 and response.json()["error"] == "expired"
    # The reload (with a refreshed session token: a non-refreshing DASH player re-requests the playback URL
    # itself, whose short session token the gateway cannot renew in place; the live DASH tests cover it).
    refreshed = (await client.post(str(session["refresh_url"]), json={"token": session["token"]})).json()
    mpd_url = f"{BASE}/live/title-9000/live.mpd?token={refreshed['token']}"
    init, media = template_urls((await client.get(mpd_url)).text, mpd_url, range(1, 4))
    assert await statuses(client, [init, *media]) == {}


async def test_cookie_mode_keeps_a_rolling_cookie_for_live_and_a_session_long_one_for_vod(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    for asset, max_age in (
        ("/cookie/live/title-9000/master.m3u8", MEDIA_TTL),  # live: the cookie rolls with every reload
        ("/cookie/vod/title-9000/master.m3u8", 4 * 3600 - 200),  # VOD: it lasts the film, up to the cap
    ):
        session = await start(client, asset)
        master_url = BASE + str(session["playback_url"])
        variant = uris((await client.get(master_url)).text, master_url)[0]
        clock.advance(200)  # past half the first cookie's life
        media = await client.get(variant)
        assert media.status_code == 200
        assert f"Max-Age={max_age};" in media.headers["set-cookie"], (asset, media.headers["set-cookie"])
        client.cookies.clear()
