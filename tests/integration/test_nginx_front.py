"""The nginx front (docker/nginx-front.conf, run as shipped): a real Debian nginx moves segment bytes itself
and asks a real gateway only for the verdict; query-mode manifests are proxied to the gateway.

A player walks the bundled title through the front: every playlist, segment, key and init answers 200,
byte-identical to the origin, and the media bytes come from nginx (the origin sees nginx, not the gateway's
HTTP client). Forged, expired, other-title and other-address tokens are refused with their typed reason in
`x-token-denial`, and a cached verdict never opens another path, another client address, or a token past
its expiry.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import Route, Settings
from gateway.http.app import build_app
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.integration.test_edge_http import uris_of
from tests.support.servers import free_port, nginx_process, nginx_static, raw_http_get, serve_app

REPO = Path(__file__).resolve().parents[2]
MEDIA = REPO / "fixtures" / "media"
FRONT_CONF = REPO / "docker" / "nginx-front.conf"
TITLE = "/vod/title-9000/"
OTHER_TITLE = "/vod/free-trailer/"
RING = KeyRing((HmacKey("k1", b"\x05" * 32),))
FORGER = KeyRing((HmacKey("k1", b"\x06" * 32),))
SEGMENT = f"{TITLE}v144/seg_001.ts"


class Front(NamedTuple):
    url: str
    verdicts: Counter[str]  # verdict requests the gateway received, by original target
    origin_log: Path


class CountVerdicts:
    """Counts the verdicts the gateway is asked for (what nginx did not take from its cache)."""

    def __init__(self, app: ASGIApp, seen: Counter[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_gateway/verdict":
            target = dict(scope["headers"]).get(b"x-original-uri", b"").decode()
            self.seen[target] += 1
        await self.app(scope, receive, send)


def front_config(gateway: str, port: int, cache: Path) -> str:
    """The shipped config with this test's addresses: the gateway, the listening port, the cache path."""
    text = FRONT_CONF.read_text()
    cache.mkdir(parents=True, exist_ok=True)  # nginx makes the caches' own directories, not their parent
    replacements = {
        "server gateway:8000;": f"server {urlsplit(gateway).netloc};",
        "listen 8080;": f"listen 127.0.0.1:{port}; listen 127.0.0.2:{port};",
        "/var/cache/nginx/": f"{cache}/",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    verdicts: Counter[str] = Counter()
    with nginx_static(MEDIA, tmp_path_factory.mktemp("origin")) as (origin, origin_log):
        settings = Settings(
            keys=RING,
            routes=(Route(mount="/vod/", origin=f"{origin}vod/"),),
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
            leeway_seconds=0,
        )
        with serve_app(CountVerdicts(build_app(settings), verdicts)) as gateway:
            port = free_port()
            workdir = tmp_path_factory.mktemp("front")
            with nginx_process(front_config(gateway, port, workdir / "cache"), workdir, port):
                yield Front(f"http://127.0.0.1:{port}", verdicts, origin_log)


def token(prefix: str = TITLE, ttl: int = 600, ring: KeyRing = RING, network: str | None = None) -> str:
    grant = Grant(
        (prefix,),
        int(time.time()) + ttl,
        session_id="s-front",
        client_network=ipaddress.ip_network(network) if network else None,
    )
    return sign_grant(grant, ring)


def test_a_player_walks_the_title_through_the_front_with_media_bytes_from_nginx(front: Front) -> None:
    fetched: dict[str, bytes] = {}
    with httpx.Client(timeout=10) as client:
        queue = [f"{front.url}{TITLE}master.m3u8?token={token()}"]
        while queue:
            url = queue.pop()
            response = client.get(url)
            assert response.status_code == 200, (url, response.headers, response.text[:200])
            path = urlsplit(url).path
            fetched[path] = response.content
            if path.endswith(".m3u8"):  # query-mode manifests carry this viewer's tokens: never stored by nginx
                assert response.headers["x-front-cache"] == "BYPASS", path
                queue += [uri for uri in uris_of(response.text, url) if urlsplit(uri).path not in fetched]
            else:
                assert response.content == (MEDIA / path.lstrip("/")).read_bytes(), path
                assert response.headers["x-content-type-options"] == "nosniff"
    media = [path for path in fetched if not path.endswith(".m3u8")]
    assert len(media) > 20 and any(path.endswith(".key") for path in media)
    # Every media request reached the origin from nginx (no client headers, so no User-Agent), none from httpx.
    origin_lines = [line for line in front.origin_log.read_text().splitlines() if ".m3u8" not in line]
    assert origin_lines and not any("python-httpx" in line for line in origin_lines)


@pytest.mark.parametrize(
    ("credential", "status", "denial"),
    [
        (lambda: token(ring=FORGER), 403, "bad_signature"),
        (lambda: token(ttl=-30), 403, "expired"),
        (lambda: token(prefix=OTHER_TITLE), 403, "acl"),
        (lambda: token(network="10.1.2.0/24"), 403, "ip"),
        (lambda: "", 401, "missing"),
    ],
    ids=["forged", "expired", "other-title", "other-ip", "none"],
)
def test_refusals_reach_the_player_with_their_typed_reason(
    front: Front, credential: object, status: int, denial: str
) -> None:
    value = credential()  # type: ignore[operator]
    response = httpx.get(f"{front.url}{SEGMENT}" + (f"?token={value}" if value else ""))
    assert (response.status_code, response.headers.get("x-token-denial")) == (status, denial)


def test_a_cached_verdict_opens_nothing_else(front: Front) -> None:
    """The same token, admitted and cached for one path and address, is judged afresh everywhere else."""
    value = token(network="127.0.0.1/32")
    url = f"{front.url}{SEGMENT}?token={value}"
    assert httpx.get(url).status_code == 200
    assert httpx.get(url).status_code == 200
    assert front.verdicts[f"{SEGMENT}?token={value}"] == 1  # the second came from nginx's cache
    other_path = f"{front.url}{OTHER_TITLE}v360/seg_000.m4s?token={value}"
    assert httpx.get(other_path).headers.get("x-token-denial") == "acl"
    other_address = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=other_address) as client:
        response = client.get(url.replace("127.0.0.1", "127.0.0.2"))
    assert (response.status_code, response.headers.get("x-token-denial")) == (403, "ip")


def test_a_cached_verdict_ends_with_its_token(front: Front) -> None:
    value = token(ttl=2)
    url = f"{front.url}{TITLE}v270/seg_002.ts?token={value}"
    assert httpx.get(url).status_code == 200
    time.sleep(2.5)
    response = httpx.get(url)
    assert (response.status_code, response.headers.get("x-token-denial")) == (403, "expired")


def test_path_tricks_are_judged_on_the_raw_target_not_nginx_normalised_one(front: Front) -> None:
    value = token(prefix=OTHER_TITLE)  # valid for the other title only
    for trick in (b"/vod/free-trailer/../title-9000/v144/seg_001.ts", b"/vod/free-trailer/%2e%2e/title-9000/key.key"):
        status, _ = raw_http_get(front.url + "/", trick + f"?token={value}".encode())
        assert status in (401, 403), trick


def test_the_verdict_is_internal(front: Front) -> None:
    response = httpx.get(f"{front.url}/_gateway/verdict", headers={"x-original-uri": f"{SEGMENT}?token={token()}"})
    assert response.status_code == 404
