"""DASH through the gateway: MPDs are rewritten like playlists (scoped tokens on every leaf), segment
URLs a player builds from the templates are verified, and the cookie mode keeps MPDs untouched."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from mpegdash.parser import MPEGDASHParser

from gateway.config import Route, Settings
from gateway.config_schema import Delivery
from gateway.http.app import build_app
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import inspect_token, sign_grant
from tests.support.servers import static_origin

ORIGIN_ROOT = Path(__file__).resolve().parent.parent.parent / "fixtures" / "dash" / "origin"
KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
MPD = "/vod/dash-title/manifest.mpd"


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with static_origin(ORIGIN_ROOT) as (url, _):
        yield url


def session_token() -> str:
    now = int(time.time())
    grant = Grant(("/vod/dash-title/",), now + 300, session_id="d1", scope=Scope.ALL, session_ends_at=now + 3600)
    return sign_grant(grant, KEYS)


async def get(origin: str, delivery: str, url: str) -> httpx.Response:
    settings = Settings(keys=KEYS, routes=(Route(mount="/vod/", origin=origin + "vod/", delivery=Delivery(delivery)),))
    app = build_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        return await client.get(url)


async def test_mpd_leaves_carry_media_tokens_and_segments_verify(origin: str) -> None:
    response = await get(origin, "query", f"{MPD}?token={session_token()}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dash+xml"
    assert response.headers["cache-control"] == "private, no-store"
    mpd = MPEGDASHParser.parse(response.text)  # starts with '<': parsed as text, never opened as a URL
    templates = [t for p in mpd.periods for a in p.adaptation_sets for t in (a.segment_templates or [])]
    templates += [
        t
        for p in mpd.periods
        for a in p.adaptation_sets
        for r in a.representations
        for t in (r.segment_templates or [])
    ]
    assert templates
    for template in templates:
        for value in (template.media, template.initialization):
            token = parse_qs(urlsplit(value).query)["token"][0]
            assert inspect_token(token).scope is Scope.MEDIA
    media = templates[0].media
    segment = re.sub(r"\$Number%05d\$", "00001", media.replace("$RepresentationID$", "0"))
    refused = await get(origin, "query", f"/vod/dash-title/{segment.split('?')[0]}")
    assert refused.status_code == 401
    verified = await get(origin, "query", f"/vod/dash-title/{segment}")
    assert verified.status_code == 404  # the token opened it; the fixture origin has no media bytes


async def test_cookie_mode_serves_the_mpd_unchanged(origin: str) -> None:
    response = await get(origin, "cookie", f"{MPD}?token={session_token()}")
    assert response.content == (ORIGIN_ROOT / MPD.lstrip("/")).read_bytes()


async def test_a_media_token_opens_no_mpd(origin: str) -> None:
    response = await get(origin, "query", f"{MPD}?token={session_token()}")
    media_token = re.search(r"token=([A-Za-z0-9_-]+)", response.text)
    assert media_token is not None
    refused = await get(origin, "query", f"{MPD}?token={media_token.group(1)}")
    assert refused.status_code == 403 and refused.json()["error"] == "scope"
