"""Live DASH through the gateway for many minutes of simulated time: no 403, fresh tokens on every refresh.

The live origin (dash-9000 looped as a dynamic MPD) and the gateway share one `SimulatedClock`; a client
does what a DASH player does every minimumUpdatePeriod (2 s): reload the MPD from its `Location`, build the
newest segment URL of every Representation from the SegmentTemplate, fetch it, and fetch the previous
reload's segments too (a player may use a URL some seconds after the manifest that listed it).

- query mode: every MPD carries freshly minted media tokens (TTL 10 s, leeway 0), so the session outlives
  dozens of media-token lives with no 403, and a segment URL from an old MPD is refused `expired`;
- cookie mode with MPD patches: the player follows PatchLocation from patch to patch (the cookie rides
  along and is re-issued); the gateway serves patches as `application/dash-patch+xml`;
- CAT edge (CTA-5007) with header renewal: a client that does what dash.js does (send `common-access-token`,
  keep the newest `common-access-token` response header) plays for 10 minutes on 2-minute tokens.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import Delivery
from gateway.dev.demo import DEMO_USERS, LIVE_DASH_TITLE, MEDIA_ROOT
from gateway.dev.live_origin import LiveConfig, LiveStream, SimulatedClock, load_vod_source
from gateway.dev.live_origin.dash import LiveDash, LiveDashConfig
from gateway.dev.live_origin.dash_source import load_dash_source
from gateway.dev.live_origin.server import build_live_app
from gateway.http.app import build_app
from gateway.sessions.entitlements import CatalogEntitlements
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.cat import CatDialect
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import inspect_token
from tests.support.recording import RecordingApp

START = 1_800_000_000.0
PAID = {"authorization": "Bearer demo-paid"}
MEDIA_TTL = 10
REFRESH_SECONDS = 2.0
MINUTES = 10
MPD_NS = "{urn:mpeg:dash:schema:mpd:2011}"
HLS_SOURCE = load_vod_source(MEDIA_ROOT / "vod" / "title-9000")
DASH_SOURCE = load_dash_source(MEDIA_ROOT / "vod" / "dash-9000")
CAT_SECRET = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"


def parse(document: bytes) -> ET.Element:
    """A document the gateway served from our own simulator (no DTD: the gateway refuses those anyway)."""
    return ET.fromstring(document)  # noqa: S314


def origin_app(clock: SimulatedClock, *, patch_ttl: int | None) -> RecordingApp:
    dash = LiveDash(LiveDashConfig(start_time=START - 30, patch_ttl_seconds=patch_ttl), DASH_SOURCE)
    return RecordingApp(build_live_app(LiveStream(LiveConfig(start_time=START - 30), HLS_SOURCE), clock, dash=dash))


def gateway(clock: SimulatedClock, origin: RecordingApp, **settings: object) -> httpx.AsyncClient:
    base = {
        "keys": KeyRing((HmacKey("k1", b"\x01" * 32),)),
        "routes": (
            Route(mount="/live/", origin="http://origin.test/live/"),
            Route(mount="/cookie/live/", origin="http://origin.test/live/", delivery=Delivery.COOKIE),
        ),
        "sessions": SessionSettings(media_ttl_seconds=MEDIA_TTL, token_ttl_seconds=10, max_life_seconds=4 * 3600),
        "catalog": CatalogEntitlements(DEMO_USERS, (LIVE_DASH_TITLE,)),
        "leeway_seconds": 0,
    }
    app = build_app(Settings(**(base | settings)), clock=clock, origin_transport=httpx.ASGITransport(app=origin))  # type: ignore[arg-type]
    # 127.0.0.1: plain-HTTP localhost, so the session cookie is not `Secure` and httpx sends it back.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@dataclass
class Representation:
    id: str
    media: str  # SegmentTemplate@media as served (token included in query mode)
    init: str
    times: list[int] = field(default_factory=list)

    def segment_url(self, base: str, t: int) -> str:
        return urljoin(base, self.media.replace("$RepresentationID$", self.id).replace("$Time$", str(t)))


def representations(mpd: ET.Element) -> dict[str, Representation]:
    out = {}
    for rep in mpd.iter(f"{MPD_NS}Representation"):
        template = rep.find(f"{MPD_NS}SegmentTemplate")
        assert template is not None
        times = [int(s.attrib["t"]) for s in template.iter(f"{MPD_NS}S")]
        out[rep.attrib["id"]] = Representation(
            rep.attrib["id"], template.attrib["media"], template.attrib["initialization"], times
        )
    return out


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def start_session(client: httpx.AsyncClient, asset: str) -> str:
    started = await client.post("/api/sessions", json={"asset": asset}, headers=PAID)
    assert started.status_code == 201, started.text
    return "http://127.0.0.1" + str(started.json()["playback_url"])


async def test_query_mode_rolls_media_tokens_on_every_mpd_reload_for_ten_minutes() -> None:
    clock = SimulatedClock(START)
    async with gateway(clock, origin_app(clock, patch_ttl=None)) as client:
        mpd_url = await start_session(client, "/live/dash-9000/manifest.mpd")
        statuses: dict[int, int] = {}
        held: list[str] = []  # the previous reload's segment URLs, fetched one refresh later
        media_tokens: dict[str, float] = {}  # token -> when it was first served
        first_urls: list[str] = []
        for step in range(int(MINUTES * 60 / REFRESH_SECONDS)):
            response = await client.get(mpd_url)
            assert response.status_code == 200, (step, response.text)
            assert response.headers["content-type"] == "application/dash+xml"
            mpd = parse(response.content)
            location = mpd.find(f"{MPD_NS}Location")
            assert location is not None and location.text
            mpd_url = urljoin(mpd_url, location.text)  # the player reloads from Location
            assert inspect_token(token_of(mpd_url)).scope is Scope.PLAYLIST
            newest = []
            for rep in representations(mpd).values():
                token = token_of(rep.media)
                assert token == token_of(rep.init)
                media_tokens.setdefault(token, clock())
                newest.append(rep.segment_url(mpd_url, rep.times[-1]))
                if step % 30 == 0:
                    newest.append(urljoin(mpd_url, rep.init.replace("$RepresentationID$", rep.id)))
            for url in newest + held:
                status = (await client.get(url)).status_code
                statuses[status] = statuses.get(status, 0) + 1
            held = newest
            first_urls = first_urls or newest
            clock.advance(REFRESH_SECONDS)

        assert set(statuses) == {200}, statuses
        lives = {token: inspect_token(token).expires_at - served for token, served in media_tokens.items()}
        assert all(MEDIA_TTL <= life <= 1.5 * MEDIA_TTL for life in lives.values()), lives
        expired = [token for token in lives if inspect_token(token).expires_at < clock()]
        assert len(expired) >= MINUTES * 60 / (1.5 * MEDIA_TTL) - 1, len(expired)  # ~40 expiries lived through
        stale = await client.get(first_urls[0])
        assert stale.status_code == 403 and stale.json()["error"] == "expired"  # the rolling really rolls


async def test_the_gateway_serves_mpd_patches_as_patch_documents() -> None:
    clock = SimulatedClock(START)
    async with gateway(clock, origin_app(clock, patch_ttl=60)) as client:
        mpd_url = await start_session(client, "/live/dash-9000/manifest.mpd")
        patch_location = parse((await client.get(mpd_url)).content).find(f"{MPD_NS}PatchLocation")
        assert patch_location is not None and patch_location.text
        patch_url = urljoin(mpd_url, patch_location.text)
        assert re.search(r"/live/dash-9000/patch-\d+\.mpp\?token=", patch_url), patch_url
        clock.advance(REFRESH_SECONDS)
        session_token = parse_qs(urlsplit(mpd_url).query)["token"][0]  # the session's own (scope: all)
        passed = await client.get(patch_url.split("?")[0] + f"?token={session_token}")
        assert passed.status_code == 200, passed.text
        assert passed.headers["content-type"] == "application/dash-patch+xml"
        patch = parse(passed.content)
        assert patch.tag == "{urn:mpeg:dash:schema:mpd-patch:2020}Patch" and patch.attrib["mpdId"] == "dash-9000"

        # With the PatchLocation's own token: until the gateway rewrites patch documents (issue 12.1) a `.mpp`
        # is a media request that a playlist-scoped token does not open. Once it does, the patch must roll
        # media tokens exactly as an MPD reload does: short-lived ones on the restated templates, and a
        # playlist-scoped token on the next PatchLocation.
        own = await client.get(patch_url)
        if own.status_code == 403:
            assert own.json()["error"] == "scope", own.text
            return
        assert own.status_code == 200 and own.headers["content-type"] == "application/dash-patch+xml", own.text
        served = clock()
        for op in parse(own.content):
            sel = op.attrib["sel"]
            if sel.endswith(("/@media", "/@initialization")):
                life = inspect_token(token_of(str(op.text))).expires_at - served
                assert MEDIA_TTL <= life <= 1.5 * MEDIA_TTL, (sel, life)  # rolling, like an MPD reload's
            elif sel == "/MPD/PatchLocation[1]":
                assert inspect_token(token_of(str(op[0].text))).scope is Scope.PLAYLIST


async def test_cookie_mode_follows_patches_for_ten_minutes() -> None:
    clock = SimulatedClock(START)
    async with gateway(clock, origin_app(clock, patch_ttl=60)) as client:
        mpd_url = await start_session(client, "/cookie/live/dash-9000/manifest.mpd")
        mpd = parse((await client.get(mpd_url)).content)
        reps = representations(mpd)
        patch_location = mpd.find(f"{MPD_NS}PatchLocation")
        assert patch_location is not None and patch_location.text
        patch_url = urljoin(mpd_url, patch_location.text)
        statuses: dict[int, int] = {}
        patches = 0
        for _ in range(int(MINUTES * 60 / REFRESH_SECONDS)):
            clock.advance(REFRESH_SECONDS)
            response = await client.get(patch_url)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/dash-patch+xml"
            patches += 1
            patch = parse(response.content)
            for op in patch:
                sel = op.attrib["sel"]
                if sel == "/MPD/PatchLocation[1]":
                    patch_url = urljoin(patch_url, str(op[0].text))
                elif sel.endswith("/SegmentTimeline") and (
                    rep_id := re.search(r"Representation\[@id='([^']+)'\]", sel)
                ):
                    reps[rep_id.group(1)].times += [int(s.attrib["t"]) for s in op]
            for rep in reps.values():
                status = (await client.get(rep.segment_url(mpd_url, rep.times[-1]))).status_code
                statuses[status] = statuses.get(status, 0) + 1
        assert patches == MINUTES * 30 and set(statuses) == {200}, statuses
        assert "token=" not in patch_url  # cookie mode: the documents carry no token


def cat_edge(clock: SimulatedClock, origin: RecordingApp) -> tuple[httpx.AsyncClient, CatDialect]:
    table = {
        "issuer": "gateway.example",
        "keys": [{"kid": "Symmetric256", "secret": CAT_SECRET}],
        "renewal": {"type": "header", "expadd_seconds": 120, "deadline_seconds": 60},
    }
    dialect = load_dialect("cat", table)
    assert isinstance(dialect, CatDialect)
    client = gateway(
        clock,
        origin,
        routes=(Route(mount="/live/", origin="http://origin.test/live/", edge="cat"),),
        dialects={"cat": dialect},
    )
    return client, dialect


async def test_cat_header_renewal_keeps_a_dash_js_like_player_going_for_ten_minutes() -> None:
    clock = SimulatedClock(START)
    client, dialect = cat_edge(clock, origin_app(clock, patch_ttl=None))
    first = dialect.issue(Grant(("/live/dash-9000/",), int(START) + 120), issued_at=int(START))
    current = first
    renewed: set[str] = set()
    base = "http://127.0.0.1/live/dash-9000/"
    async with client:
        for step in range(int(MINUTES * 60 / REFRESH_SECONDS)):
            # dash.js: the newest `common-access-token` of the host goes on every request to it.
            responses = [await client.get(base + "manifest.mpd", headers={"common-access-token": current})]
            mpd = parse(responses[0].content)
            for rep in representations(mpd).values():
                url = rep.segment_url(base, rep.times[-1])
                assert "cat=" not in url  # header delivery: the MPD is the origin's, no token in it
                responses.append(await client.get(url, headers={"common-access-token": current}))
            for response in responses:
                assert response.status_code == 200, (step, response.status_code, response.text)
                if token := response.headers.get("common-access-token"):
                    assert response.headers["cta-common-access-token"] == token  # both names players read
                    renewed.add(token)
                    current = token
            clock.advance(REFRESH_SECONDS)
        assert len(renewed) >= MINUTES - 1, len(renewed)  # one renewal a minute (expadd 120 s, deadline 60 s)
        stale = await client.get(base + "manifest.mpd", headers={"common-access-token": first})
        assert stale.status_code in (401, 403) and stale.json()["error"] == "expired"
