"""A DASH client walks every place of a rewritten MPD through a real gateway (issue 12.1).

A real uvicorn gateway (query delivery) fronts a real HTTP origin serving fixtures/dash/walk: a dynamic MPD
with Location, PatchLocation, an xlinked Period, SegmentTemplate (index, `$Number%03d$`, a literal `$$`),
SegmentTimeline, SegmentList, SegmentBase, BaseURL alternatives on the origin and on a CDN, a 23009-4 key
template, a ClearKey licence URL, a Period and a licence server on other hosts, and an MPD patch whose
operations replace a template and add a Period.
The walker resolves every place as a player does (BaseURL hierarchy, templates expanded for the first
numbers and times of each Representation), starting from one session token. Every request to the gateway
must answer 200 (never 401/403), each carrying the token the gateway wrote for its kind (playlist scope
for MPD, patch and remote element; media scope for the rest), and no URL to another host may carry a token.
"""

from __future__ import annotations

import http.server
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.http.app import build_app
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import inspect_token, sign_grant
from tests.support.servers import OriginRequest, scripted_origin, serve_app

WALK = Path(__file__).resolve().parents[2] / "fixtures" / "dash" / "walk"
KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
TITLE = "/vod/walk/"
NS = {
    "d": "urn:mpeg:dash:schema:mpd:2011",
    "p": "urn:mpeg:dash:schema:mpd-patch:2020",
    "sea": "urn:mpeg:dash:schema:sea:2012",
    "ck": "http://dashif.org/guidelines/clearKey",
    "dashif": "https://dashif.org/CPS",
}
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
PLAYLIST_KINDS = frozenset({"mpd", "patch", "xlink"})
TEMPLATE_MEDIA_SEL = r"/MPD/Period\[@id='(\w+)'\]/AdaptationSet\[@id='(\w+)'\]/SegmentTemplate/@media"
TEMPLATE_TOKEN = re.compile(r"\$(?:([A-Za-z]+)(%0\d+d)?)?\$")


def serve_title(request: OriginRequest, handler: http.server.BaseHTTPRequestHandler) -> None:
    """The walk title: its manifests from fixtures/dash/walk, any other path under it a few media bytes."""
    path = unquote(urlsplit(request.target).path)
    name = path.removeprefix(TITLE)
    body = (WALK / name).read_bytes() if name in ("manifest.mpd", "patch.mpp", "period2.xml") else path.encode()
    status = 200 if path.startswith(TITLE) else 404
    handler.send_response(status)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, list[OriginRequest]]]:
    with scripted_origin(serve_title) as (origin, seen):
        settings = Settings(keys=KEYS, routes=(Route(mount="/vod/", origin=origin + "vod/"),))
        with serve_app(build_app(settings)) as url:
            yield url, seen


def parse_xml(data: bytes) -> ET.Element:
    return ET.fromstring(data)  # noqa: S314 (our fixtures, through our gateway, which refuses any DOCTYPE)


def expand(template: str, representation: str, bandwidth: str, number: int, at: int) -> str:
    def one(match: re.Match[str]) -> str:
        name, width = match.groups()
        if name is None:
            return "$"
        value = {"RepresentationID": representation, "Bandwidth": bandwidth, "Number": number, "Time": at}[name]
        return width % value if width and name != "RepresentationID" else str(value)

    return TEMPLATE_TOKEN.sub(one, template)


class Walker:
    """A small DASH client: follows every place, as dash.js and shaka resolve them."""

    def __init__(self, client: httpx.Client, gateway: str) -> None:
        self.client = client
        self.host = urlsplit(gateway).netloc
        self.fetched: dict[str, str] = {}  # gateway path + query without the token -> kind
        self.foreign: list[str] = []
        self.scopes: dict[str, set[Scope]] = {}

    def follow(self, url: str, kind: str) -> bytes:
        parts = urlsplit(url)
        if parts.netloc != self.host:
            assert "token=" not in url and "/t/" not in url, f"a token goes to another host: {url}"
            self.foreign.append(url)
            return b""
        tokens = parse_qs(parts.query).get("token", [])
        path = parts.path
        if path.startswith("/t/"):  # a path token (a BaseURL beside another host's)
            _, _, token, path = path.split("/", 3)
            tokens.append(token)
            path = "/" + path
        assert len(tokens) == 1, f"{kind} {url}: {len(tokens)} tokens"
        self.scopes.setdefault(kind, set()).add(inspect_token(tokens[0]).scope)
        response = self.client.get(url)
        assert response.status_code == 200, f"{kind} {url}: {response.status_code} {response.text}"
        query = "&".join(p for p in parts.query.split("&") if not p.startswith("token="))
        self.fetched[path + (f"?{query}" if query else "")] = kind
        return response.content

    @staticmethod
    def bases(element: ET.Element, parents: list[str]) -> list[str]:
        own = [(base.text or "").strip() for base in element.findall("d:BaseURL", NS)]
        return [urljoin(parent, value) for parent in parents for value in own] if own else parents

    def walk_mpd(self, url: str) -> None:
        root = parse_xml(self.follow(url, "mpd"))
        for location in root.findall("d:Location", NS):
            self.follow(urljoin(url, (location.text or "").strip()), "mpd")
        mpd_bases = self.bases(root, [url])
        for period in root.findall("d:Period", NS):
            self.walk_period(period, mpd_bases)
        for patch_location in root.findall("d:PatchLocation", NS):
            self.walk_patch(urljoin(url, (patch_location.text or "").strip()), root, url)

    def walk_period(self, period: ET.Element, parents: list[str]) -> None:
        href = period.get(XLINK_HREF)
        if href is not None:  # dash.js: MPD BaseURL + href; the fragment replaces the element
            period = parse_xml(self.follow(urljoin(parents[0], href), "xlink"))
        bases = self.bases(period, parents)
        for adaptation_set in period.findall("d:AdaptationSet", NS):
            self.walk_adaptation_set(adaptation_set, self.bases(adaptation_set, bases))

    def walk_adaptation_set(self, adaptation_set: ET.Element, bases: list[str]) -> None:
        for protection in adaptation_set.findall("d:ContentProtection", NS):
            for period in protection.findall("sea:CryptoPeriod", NS):
                for number in (1, 2, 3):
                    key = expand(period.get("keyUriTemplate", ""), "", "", number, 0)
                    for base in bases:
                        self.follow(urljoin(base, key), "key")
            for laurl in [*protection.findall("ck:Laurl", NS), *protection.findall("dashif:Laurl", NS)]:
                for base in bases:
                    self.follow(urljoin(base, (laurl.text or "").strip()), "licence")
        shared = adaptation_set.find("d:SegmentTemplate", NS)
        for representation in adaptation_set.findall("d:Representation", NS):
            rep_bases = self.bases(representation, bases)
            template = representation.find("d:SegmentTemplate", NS)
            if template is None:
                template = shared
            if template is not None:
                self.walk_template(template, representation, rep_bases, template.get("media", ""))
            for segment_list in representation.findall("d:SegmentList", NS):
                for child, attribute, kind in (
                    ("d:Initialization", "sourceURL", "init"),
                    ("d:RepresentationIndex", "sourceURL", "index"),
                    ("d:SegmentURL", "media", "segment"),
                ):
                    for element in segment_list.findall(child, NS):
                        for base in rep_bases:
                            self.follow(urljoin(base, element.get(attribute, "")), kind)
            if representation.find("d:SegmentBase", NS) is not None:
                for base in rep_bases:  # the BaseURL itself is the media file
                    self.follow(base, "segment")

    def walk_template(self, template: ET.Element, representation: ET.Element, bases: list[str], media: str) -> None:
        rep_id, bandwidth = representation.get("id", ""), representation.get("bandwidth", "")
        numbers: list[tuple[int, int]] = []
        number = int(template.get("startNumber", "1"))
        timeline = template.find("d:SegmentTimeline", NS)
        if timeline is None:
            numbers = [(number + i, 0) for i in range(3)]
        else:
            at = 0
            for s in timeline.findall("d:S", NS):
                at = int(s.get("t", at))
                for _ in range(int(s.get("r", "0")) + 1):
                    numbers.append((number, at))
                    number, at = number + 1, at + int(s.get("d", "0"))
        for base in bases:
            for attribute, kind in (("initialization", "init"), ("index", "index")):
                if template.get(attribute):
                    self.follow(urljoin(base, expand(template.get(attribute, ""), rep_id, bandwidth, 0, 0)), kind)
            for number, at in numbers[:3]:
                self.follow(urljoin(base, expand(media, rep_id, bandwidth, number, at)), "segment")

    def walk_patch(self, url: str, mpd: ET.Element, mpd_url: str) -> None:
        patch = parse_xml(self.follow(url, "patch"))
        mpd_bases = self.bases(mpd, [mpd_url])
        for operation in patch:
            sel = operation.get("sel", "")
            for location in operation.iter(f"{{{NS['p']}}}PatchLocation"):
                self.follow(urljoin(mpd_url, (location.text or "").strip()), "patch")  # the next patch
            for period in operation.findall("p:Period", NS):
                for adaptation_set in period.findall("p:AdaptationSet", NS):  # payload in the patch namespace
                    shared = adaptation_set.find("p:SegmentTemplate", NS)
                    for representation in adaptation_set.findall("p:Representation", NS):
                        assert shared is not None
                        self.walk_template(_as_mpd(shared), _as_mpd(representation), mpd_bases, shared.get("media", ""))
            target = re.fullmatch(TEMPLATE_MEDIA_SEL, sel)
            if target is not None:  # the template's new media value, under the target's BaseURLs
                target_period = mpd.find(f"d:Period[@id='{target.group(1)}']", NS)
                assert target_period is not None
                target_set = target_period.find(f"d:AdaptationSet[@id='{target.group(2)}']", NS)
                assert target_set is not None
                bases = self.bases(target_set, self.bases(target_period, mpd_bases))
                template = target_set.find("d:SegmentTemplate", NS)
                assert template is not None
                for representation in target_set.findall("d:Representation", NS):
                    self.walk_template(template, representation, bases, (operation.text or "").strip())


def _as_mpd(element: ET.Element) -> ET.Element:
    """A patch payload element re-read in the MPD namespace (livesim2 writes payloads in the patch's)."""
    text = ET.tostring(element).decode().replace(NS["p"], NS["d"])
    return parse_xml(text.encode())


def session_token() -> str:
    now = int(time.time())
    grant = Grant((TITLE,), now + 300, session_id="walk", scope=Scope.ALL, session_ends_at=now + 3600)
    return sign_grant(grant, KEYS)


EXPECTED = {
    "mpd": ["manifest.mpd", "manifest.mpd?v=1"],
    "patch": ["patch.mpp?publishTime=2026-01-01T00%3A00%3A00Z", "patch.mpp?publishTime=2026-01-01T00%3A00%3A02Z"],
    "xlink": ["period2.xml"],
    "key": ["video/keys/key-1.key", "video/keys/key-2.key", "video/keys/key-3.key"],
    "licence": ["license/clearkey"],
    "init": [
        "video/v1/init.mp4", "video/v2/init.mp4", "audio/a1/init.mp4", "p2/v1/init.mp4", "p4/init.mp4",
    ],
    "index": ["video/v1/index.sidx", "video/v2/index.sidx", "audio/a1/index.sidx"],
    "segment": [
        *(f"video/{r}/seg-00{n}-$.m4s" for r in ("v1", "v2") for n in (1, 2, 3)),
        *(f"video/{r}/t-{t}.m4s" for r in ("v1", "v2") for t in (0, 2000, 4000)),
        "audio/a1/1.m4s", "audio/a1/2.m4s?part=b", "audio/a2.mp4", "subs/en/1.vtt", "subs/en/2.vtt", "subs/en/3.vtt",
        *(f"p2/v1/{n}.m4s" for n in (5, 6, 7)),
        *(f"p4/{n}.m4s" for n in (1, 2, 3)),
    ],
}  # fmt: skip


def test_a_dash_client_follows_every_place_with_the_token_the_gateway_accepts(
    gateway: tuple[str, list[OriginRequest]],
) -> None:
    url, origin_seen = gateway
    with httpx.Client(timeout=10) as client:
        walker = Walker(client, url)
        walker.walk_mpd(f"{url}{TITLE}manifest.mpd?token={session_token()}")
    expected = {TITLE + path: kind for kind, paths in EXPECTED.items() for path in paths}
    assert walker.fetched == expected
    # The token each place got is the one the gateway accepts for what it points at.
    assert walker.scopes.pop("mpd") == {Scope.ALL, Scope.PLAYLIST}  # the session's own, then the Location's
    for kind, scopes in walker.scopes.items():
        assert scopes == {Scope.PLAYLIST if kind in PLAYLIST_KINDS else Scope.MEDIA}, kind
    # Other hosts: the Period on a CDN and a DRM vendor's licence server, never with a token.
    assert sorted({urlsplit(u).netloc for u in walker.foreign}) == ["cdn.other.example", "license.other.example"]
    assert any(u.endswith("/walk/v1/init.mp4") for u in walker.foreign)
    assert any(u.endswith("/walk/subs/en/1.vtt") for u in walker.foreign)
    assert not any("token" in request.target for request in origin_seen)  # no credential reaches the origin


def test_without_its_token_a_walked_url_is_refused(gateway: tuple[str, list[OriginRequest]]) -> None:
    url, _ = gateway
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{url}{TITLE}period2.xml").status_code == 401
        media = re.search(r'media="([^"]+)"', client.get(f"{url}{TITLE}manifest.mpd?token={session_token()}").text)
        assert media is not None and "token=" in media.group(1)
        token = parse_qs(urlsplit(media.group(1)).query)["token"][0]
        # A media token opens no patch or MPD: those need the playlist-scoped one.
        for name in ("patch.mpp", "manifest.mpd"):
            refused = client.get(f"{url}{TITLE}{name}?token={token}")
            assert refused.status_code == 403 and refused.json()["error"] == "scope", name
        # On a path of no known type it opens a file, as it would a TTML `.xml`: the origin's bytes, unrewritten
        # (only the playlist-scoped token the gateway writes on xlink:href opens it as an MPD fragment).
        raw = client.get(f"{url}{TITLE}period2.xml?token={token}")
        assert raw.status_code == 200 and raw.content == (WALK / "period2.xml").read_bytes()
        assert raw.headers["content-type"] == "application/octet-stream"
        fragment = client.get(f"{url}{TITLE}period2.xml?token={_playlist_token(client, url)}")
        assert fragment.headers["content-type"] == "application/dash+xml" and "?token=" in fragment.text


def _playlist_token(client: httpx.Client, url: str) -> str:
    mpd = client.get(f"{url}{TITLE}manifest.mpd?token={session_token()}").text
    found = re.search(r'xlink:href="period2.xml\?token=([^"]+)"', mpd)
    assert found is not None
    return found.group(1)
