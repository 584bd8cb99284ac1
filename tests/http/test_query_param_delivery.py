"""`delivery = "queryparam"`: one manifest for every viewer, the token handed on by the player.

The demo gateway runs in-process (injected clock) in front of a real HTTP origin on 127.0.0.1 serving the
bundled titles, with headers a test chooses. Two sessions get byte-identical manifests (HLS multivariant
and media playlists, the DASH MPD); each is then followed the way a player does it — HLS: `{$token}`
substituted from the query of the playlist's own URL; DASH: the MPD URL's query appended to every segment
request ($querypart$) — and every playlist, key, init and segment answers 200 for both sessions.
"""

from __future__ import annotations

import http.server
import re
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit
from xml.etree import ElementTree

import httpx
import m3u8
import pytest

from gateway.dev.demo import MEDIA_ROOT, build_demo
from tests.support.clock import FakeClock
from tests.support.servers import OriginRequest, scripted_origin

PAID = {"authorization": "Bearer demo-paid"}
HLS_ASSET = "/queryparam/vod/title-9000/master.m3u8"
DASH_ASSET = "/queryparam/vod/dash-9000/manifest.mpd"
MPD = "{urn:mpeg:dash:schema:mpd:2011}"
# Headers the origin adds to every manifest response; a test sets them.
ORIGIN_HEADERS: dict[str, str] = {}


def respond(request: OriginRequest, handler: http.server.BaseHTTPRequestHandler) -> None:
    """The bundled file, one connection per request (the in-process gateway's pool is never closed)."""
    path = MEDIA_ROOT / urlsplit(request.target).path.lstrip("/")
    found = path.is_file() and path.resolve().is_relative_to(MEDIA_ROOT.resolve())
    body = path.read_bytes() if found else b""
    handler.send_response(200 if found else 404)
    handler.send_header("connection", "close")
    handler.send_header("content-length", str(len(body)))
    if found and path.suffix in (".m3u8", ".mpd"):
        for name, value in ORIGIN_HEADERS.items():
            handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with scripted_origin(respond) as (url, _):
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(origin: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    ORIGIN_HEADERS.clear()
    app = build_demo(tmp_path, origin, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        yield c
    ORIGIN_HEADERS.clear()


async def start(client: httpx.AsyncClient, asset: str) -> dict[str, object]:
    response = await client.post("/api/sessions", json={"asset": asset}, headers=PAID)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def substituted(uri: str, playlist_url: str) -> str:
    """What hls.js and shaka request for `uri`: `{$token}` from the query of the playlist's own URL."""
    token = parse_qs(urlsplit(playlist_url).query)["token"][0]
    return urljoin(playlist_url, uri.replace("{$token}", token))


def hls_uris(text: str) -> list[str]:
    playlist = m3u8.loads(text)
    found = [p.uri for p in playlist.playlists] + [m.uri for m in playlist.media if m.uri]
    found += [s.uri for s in playlist.segments] + [k.uri for k in playlist.keys if k and k.uri]
    return list(dict.fromkeys(found))


async def test_two_hls_sessions_get_identical_playlists_that_both_play(client: httpx.AsyncClient) -> None:
    sessions = [await start(client, HLS_ASSET), await start(client, HLS_ASSET)]
    assert sessions[0]["token"] != sessions[1]["token"]
    urls = ["http://127.0.0.1" + str(s["playback_url"]) for s in sessions]
    masters = [await client.get(url) for url in urls]
    assert masters[0].content == masters[1].content  # byte-identical for every viewer
    master = masters[0].text
    assert master.startswith('#EXTM3U\n#EXT-X-VERSION:11\n#EXT-X-DEFINE:QUERYPARAM="token"\n')
    assert all(str(s["token"]) not in master for s in sessions)
    variants = hls_uris(master)
    assert variants and all(uri.endswith("?token={$token}") for uri in variants)

    fetched: dict[str, list[bytes]] = {}
    for session, master_url in zip(sessions, urls, strict=True):
        for variant in variants:
            media_url = substituted(variant, master_url)
            media = await client.get(media_url)
            assert media.status_code == 200, media_url
            assert '#EXT-X-DEFINE:QUERYPARAM="token"' in media.text and str(session["token"]) not in media.text
            fetched.setdefault(variant, []).append(media.content)
            for uri in hls_uris(media.text):
                assert uri.endswith("token={$token}")
                response = await client.get(substituted(uri, media_url))
                assert response.status_code == 200, (uri, response.text)
    assert all(len(set(bodies)) == 1 for bodies in fetched.values())  # media playlists identical too
    # Without the player's substitution (or with no token) nothing opens.
    first_segment = hls_uris((await client.get(substituted(variants[0], urls[0]))).text)[-1]
    bare = urljoin(substituted(variants[0], urls[0]), first_segment.replace("token={$token}", "token="))
    assert (await client.get(bare)).status_code in (401, 403)


def dash_segment_urls(mpd: str, mpd_url: str) -> list[str]:
    """Every init and media segment URL the bundled MPD's SegmentTemplate/SegmentTimeline names."""
    urls: list[str] = []
    root = ElementTree.fromstring(mpd)  # noqa: S314 (our fixture)
    for adaptation in root.iter(f"{MPD}AdaptationSet"):
        template = adaptation.find(f"{MPD}SegmentTemplate")
        assert template is not None
        count = sum(1 + int(s.get("r", "0")) for s in template.iter(f"{MPD}S"))
        start = int(template.get("startNumber", "1"))
        for representation in adaptation.iter(f"{MPD}Representation"):
            rep = representation.get("id", "")
            urls.append(template.get("initialization", "").replace("$RepresentationID$", rep))
            for number in range(start, start + count):
                media = template.get("media", "").replace("$RepresentationID$", rep)
                urls.append(re.sub(r"\$Number%05d\$", f"{number:05d}", media))
    return [urljoin(mpd_url, url) for url in urls]


async def test_two_dash_sessions_get_identical_mpds_that_both_play(client: httpx.AsyncClient) -> None:
    sessions = [await start(client, DASH_ASSET), await start(client, DASH_ASSET)]
    urls = ["http://127.0.0.1" + str(s["playback_url"]) for s in sessions]
    mpds = [await client.get(url) for url in urls]
    assert mpds[0].status_code == 200 and mpds[0].content == mpds[1].content
    mpd = mpds[0].text
    assert all(str(s["token"]) not in mpd for s in sessions)
    root = ElementTree.fromstring(mpd)  # noqa: S314 (our fixture)
    descriptors = root.findall(f"{MPD}SupplementalProperty")
    assert [d.get("schemeIdUri") for d in descriptors] == ["urn:mpeg:dash:urlparam:2016", "urn:mpeg:dash:urlparam:2014"]
    ext = descriptors[0].find("{urn:mpeg:dash:schema:urlparam:2016}ExtUrlQueryInfo")
    assert ext is not None and ext.attrib == {
        "queryTemplate": "$querypart$",
        "useMPDUrlQuery": "true",
        "includeInRequests": "segment xlink mpd mpdpatch",
    }
    info = descriptors[1].find("{urn:mpeg:dash:schema:urlparam:2014}UrlQueryInfo")
    assert info is not None and info.attrib == {"queryTemplate": "$querypart$", "useMPDUrlQuery": "true"}
    assert root.find(f"{MPD}RequestParam") is None  # an option, off by default

    for mpd_url in urls:
        query = urlsplit(mpd_url).query  # $querypart$: the MPD URL's whole query
        segments = dash_segment_urls(mpd, mpd_url)
        assert len(segments) > 20
        for segment in segments:
            response = await client.get(f"{segment}?{query}")
            assert response.status_code == 200, (segment, response.text)
    assert (await client.get(dash_segment_urls(mpd, urls[0])[0])).status_code == 401  # the query is the key


async def test_the_token_lives_as_long_as_the_session(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await start(client, HLS_ASSET)
    assert session["mode"] == "queryparam"
    assert session["expires_at"] == session["session_ends_at"] == int(clock.now) + 4 * 3600
    assert str(session["playback_url"]) == f"{HLS_ASSET}?token={session['token']}"


async def test_shared_manifests_are_public_for_no_longer_than_the_origin_allows(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ORIGIN_HEADERS["cache-control"] = "max-age=30"
    session = await start(client, HLS_ASSET)
    url = str(session["playback_url"])
    assert (await client.get(url)).headers["cache-control"] == "public, max-age=30"
    clock.advance(12)
    assert (await client.get(url)).headers["cache-control"] == "public, max-age=18"  # what is left, never more

    dash = await start(client, DASH_ASSET)
    ORIGIN_HEADERS.clear()
    # Expires counts from the origin's own Date (http.server sends the wall clock's), whatever ours says.
    ORIGIN_HEADERS["expires"] = formatdate(time.time() + 20, usegmt=True)
    answer = (await client.get(str(dash["playback_url"]))).headers["cache-control"]
    assert answer in ("public, max-age=19", "public, max-age=20")

    ORIGIN_HEADERS.clear()
    ORIGIN_HEADERS["cache-control"] = "no-store"
    other = await start(client, "/queryparam/vod/free-trailer/master.m3u8")
    assert (await client.get(str(other["playback_url"]))).headers["cache-control"] == "public, no-cache"


async def test_tokenized_modes_stay_private(client: httpx.AsyncClient) -> None:
    ORIGIN_HEADERS["cache-control"] = "max-age=30"
    session = await start(client, "/vod/title-9000/master.m3u8")
    assert (await client.get(str(session["playback_url"]))).headers["cache-control"] == "private, no-store"
