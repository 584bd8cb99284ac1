"""Manifests at the nginx front (docker/nginx-front.conf, run as shipped by a real Debian nginx in front of
real gateways): a manifest identical for every viewer (cookie and queryparam delivery) is rendered by the
gateway once and served by nginx to every viewer the verdict admits, with each viewer's own cookie; a refused
viewer gets the typed reason; a tokenized (query-mode) manifest is proxied every time and never stored; and
two gateway instances behind the front cost a live origin about one fetch per refresh interval.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.config_schema import Delivery
from gateway.dev.live_origin import LiveConfig
from gateway.dev.live_origin.server import build_live_origin
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.integration.test_nginx_front import front_config
from tests.support.recording import RecordingApp
from tests.support.servers import free_port, nginx_process, nginx_static, serve_app

REPO = Path(__file__).resolve().parents[2]
MEDIA = REPO / "fixtures" / "media"
RING = KeyRing((HmacKey("k1", b"\x15" * 32),))
FORGER = KeyRing((HmacKey("k1", b"\x16" * 32),))
COOKIE, QUERYPARAM, QUERY = "/cookie/title-9000/", "/qp/title-9000/", "/query/title-9000/"
PLAYLIST = "v144/index.m3u8"
LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)


class Front(NamedTuple):
    url: str
    gateway: str
    seen: RecordingApp  # every request the gateway received (verdicts included)
    cache: Path  # nginx's cache directories

    def manifest_requests(self, path: str) -> int:
        """Requests for `path` the gateway answered with bytes (not verdicts)."""
        return sum(1 for seen in self.seen.seen if seen.path == path)


def token(prefix: str, *, session: str = "s-1", ttl: int = 600, ring: KeyRing = RING) -> str:
    return sign_grant(Grant((prefix,), int(time.time()) + ttl, session_id=session), ring)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    with nginx_static(MEDIA, tmp_path_factory.mktemp("origin")) as (origin, _):
        settings = Settings(
            keys=RING,
            routes=(
                Route(mount="/cookie/", origin=f"{origin}vod/", delivery=Delivery.COOKIE),
                Route(mount="/qp/", origin=f"{origin}vod/", delivery=Delivery.QUERYPARAM),
                Route(mount="/query/", origin=f"{origin}vod/"),
            ),
            trusted_proxies=LOCAL,
            leeway_seconds=0,
        )
        gateway = RecordingApp(build_app(settings))
        with serve_app(gateway) as gateway_url:
            port = free_port()
            workdir = tmp_path_factory.mktemp("front")
            with nginx_process(front_config(gateway_url, port, workdir / "cache"), workdir, port):
                yield Front(f"http://127.0.0.1:{port}", gateway_url, gateway, workdir / "cache")


def test_cookie_mode_manifests_are_rendered_once_and_served_by_nginx_to_every_viewer(front: Front) -> None:
    path = COOKIE + PLAYLIST
    answers = [
        httpx.get(front.url + path, cookies={"gw_token": token(COOKIE, session=f"viewer-{n}")}) for n in range(12)
    ]
    assert [a.status_code for a in answers] == [200] * 12
    assert [a.headers["x-front-cache"] for a in answers] == ["MISS"] + ["HIT"] * 11
    assert front.manifest_requests(path) == 1  # one render for twelve viewers
    assert len({a.content for a in answers}) == 1 and b"token" not in answers[0].content
    assert not any("set-cookie" in a.headers for a in answers)  # their cookies last: nothing to renew
    direct = httpx.get(front.gateway + path, cookies={"gw_token": token(COOKIE)})
    assert direct.content == answers[0].content  # byte-identical to what the gateway serves a viewer itself


def test_a_cached_cookie_mode_manifest_carries_each_viewers_own_cookie(front: Front) -> None:
    """A viewer arriving with the token in the URL gets the cookie for it from the verdict, never the cookie of
    the viewer whose request filled the cache."""
    path = COOKIE + "master.m3u8"
    first, second = token(COOKIE, session="first"), token(COOKIE, session="second")
    one = httpx.get(f"{front.url}{path}?token={first}")
    two = httpx.get(f"{front.url}{path}?token={second}")
    assert (one.headers["x-front-cache"], two.headers["x-front-cache"]) == ("MISS", "HIT")
    assert one.content == two.content
    assert [c.split(";")[0] for c in one.headers.get_list("set-cookie")] == [f"gw_token={first}"]
    assert [c.split(";")[0] for c in two.headers.get_list("set-cookie")] == [f"gw_token={second}"]
    assert "HttpOnly" in two.headers["set-cookie"]


def test_queryparam_manifests_come_from_the_front_within_the_origins_freshness(front: Front) -> None:
    path = QUERYPARAM + PLAYLIST
    answers = [httpx.get(f"{front.url}{path}?token={token(QUERYPARAM, session=f'qp-{n}')}") for n in range(10)]
    assert [a.headers["x-front-cache"] for a in answers] == ["MISS"] + ["HIT"] * 9
    assert front.manifest_requests(path) == 1
    assert len({a.content for a in answers}) == 1
    assert b'#EXT-X-DEFINE:QUERYPARAM="token"' in answers[0].content
    # Downstream caches get the end of the gateway's freshness (60 s for a VOD playlist with no max-age) as
    # an absolute Expires: nginx replays the response later and sends no Age.
    assert answers[-1].headers["cache-control"] == "public"
    expires = parsedate_to_datetime(answers[-1].headers["expires"]).timestamp()
    assert time.time() + 50 < expires <= time.time() + 60


@pytest.mark.parametrize(
    ("credential", "status", "denial"),
    [
        (lambda: token(QUERYPARAM, ring=FORGER), 403, "bad_signature"),
        (lambda: token(QUERYPARAM, ttl=-30), 403, "expired"),
        (lambda: token(COOKIE), 403, "acl"),
        (lambda: "", 401, "missing"),
    ],
    ids=["forged", "expired", "other-title", "none"],
)
def test_a_viewer_without_a_valid_token_is_refused_a_cached_manifest_with_the_reason(
    front: Front, credential: object, status: int, denial: str
) -> None:
    path = QUERYPARAM + "v270/index.m3u8"
    assert httpx.get(f"{front.url}{path}?token={token(QUERYPARAM)}").status_code == 200  # cached now
    rendered = front.manifest_requests(path)
    value = credential()  # type: ignore[operator]
    response = httpx.get(front.url + path + (f"?token={value}" if value else ""))
    assert (response.status_code, response.headers.get("x-token-denial")) == (status, denial)
    assert b"#EXTM3U" not in response.content
    assert front.manifest_requests(path) == rendered  # refused by the verdict at the front, not by a render


def test_a_query_mode_manifest_is_never_stored_or_shared(front: Front) -> None:
    path = QUERY + PLAYLIST
    viewers = [token(QUERY, session="alice"), token(QUERY, session="bob")]
    answers = {value: [httpx.get(f"{front.url}{path}?token={value}") for _ in range(2)] for value in viewers}
    assert front.manifest_requests(path) == 4  # every request rendered by the gateway, for its viewer
    alice, bob = (answers[value][0].content for value in viewers)
    assert all(a.headers["x-front-cache"] == "BYPASS" for pair in answers.values() for a in pair)
    assert alice != bob and b"token=" in alice
    alice_tokens = {line.split(b"token=")[1] for line in alice.splitlines() if b"token=" in line}
    assert not any(value in bob for value in alice_tokens)
    stored = b"".join(file.read_bytes() for file in (front.cache / "manifests").rglob("*") if file.is_file())
    assert stored and not any(value in stored for value in alice_tokens)  # others are stored, never these


def test_live_two_gateways_behind_the_front_cost_the_origin_one_fetch_per_refresh(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Twenty viewers reload a live playlist (the origin's max-age=1) every 0.2 s through the front for 6 s,
    round-robin over two gateway instances, each with its own manifest cache."""
    origin = RecordingApp(build_live_origin(LiveConfig(start_time=time.time() - 60), MEDIA / "vod" / "title-9000"))
    prefix = "/live/title-9000/"
    path = f"{prefix}{PLAYLIST}"
    with serve_app(origin) as origin_url:
        settings = Settings(
            keys=RING,
            routes=(Route(mount="/live/", origin=f"{origin_url}/live/", delivery=Delivery.QUERYPARAM),),
            trusted_proxies=LOCAL,
        )
        gateways = [RecordingApp(build_app(settings)), RecordingApp(build_app(settings))]
        with serve_app(gateways[0]) as one, serve_app(gateways[1]) as two:
            port = free_port()
            workdir = tmp_path_factory.mktemp("live-front")
            conf = front_config(one, port, workdir / "cache").replace(
                f"server {one.removeprefix('http://')};",
                f"server {one.removeprefix('http://')}; server {two.removeprefix('http://')};",
            )
            with nginx_process(conf, workdir, port):
                served, elapsed, sequences = asyncio.run(
                    _reload(f"http://127.0.0.1:{port}{path}", viewers=20, seconds=6.0)
                )
    fetches = sum(1 for seen in origin.seen if seen.path == path)
    renders = [sum(1 for seen in gateway.seen if seen.path == path) for gateway in gateways]
    assert served > 150  # the viewers' reloads, all answered 200
    assert max(sequences) - min(sequences) >= 2  # the live window moved on: no stale copy kept being served
    assert sorted(renders)[0] == 0, renders  # one instance fills this manifest (the key's hash)
    assert sum(renders) < served / 5  # a few fills a second (the copy expires each second), not every reload
    # The origin's max-age=1: one fetch a second, plus the first; round-robin fills (no hash) made 10 in 6 s.
    assert fetches <= math.ceil(elapsed) + 2, (fetches, elapsed, renders)
    verdicts = [sum(1 for seen in gateway.seen if seen.path == "/_gateway/verdict") for gateway in gateways]
    assert all(verdicts), verdicts  # both instances serve behind the front (verdicts go round-robin)
    print(f"served {served}, origin fetches {fetches} in {elapsed:.1f} s, fills {renders}, verdicts {verdicts}")


async def _reload(url: str, *, viewers: int, seconds: float) -> tuple[int, float, list[int]]:
    """`viewers` players reloading `url` every 0.2 s for `seconds`, each with its own token; how many 200s, the
    seconds it took, and the media sequence numbers they saw."""
    served = 0
    sequences: list[int] = []
    start = time.monotonic()
    deadline = start + seconds
    async with httpx.AsyncClient(timeout=10) as client:

        async def viewer(n: int) -> None:
            nonlocal served
            value = token("/live/title-9000/", session=f"live-{n}")
            while time.monotonic() < deadline:
                response = await client.get(f"{url}?token={value}")
                assert response.status_code == 200, response.text
                served += 1
                sequences.append(int(response.text.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0]))
                await asyncio.sleep(0.2)

        await asyncio.gather(*(viewer(n) for n in range(viewers)))
    return served, time.monotonic() - start, sequences
