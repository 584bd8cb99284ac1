"""Manifests for a CDN: a route whose segments a CDN serves, one golden file per dialect form.

Every CDN URL written must verify with that dialect's edge check (and tampering must not), keys and
playlists stay on the gateway with its own tokens, and a prefix dialect signs once per session bucket.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.errors import Denial, TokenDenied
from gateway.http.app import build_app
from gateway.http.cdn import CdnBinding
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import NO_OPTIONS, Dialect, DialectDefaults, EdgePath, EdgeRequest, SigningOptions
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant
from tests.support.clock import FakeClock
from tests.support.paths import FIXTURES
from tests.support.servers import static_origin

HERE = FIXTURES
CDN_DIR = HERE / "cdn"
KEYS_DIR = HERE / "dialects"
NOW = 1_800_000_000
RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
SEED = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # a fixed Ed25519 seed (throwaway)

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "cloudfront_custom_query": (
        "cloudfront",
        {
            "base_url": "https://d111111abcdef8.cloudfront.net",
            "keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": "keys/appendix-a-rsa2048.pem"}],
        },
    ),
    "cloudfront_custom_cookie": (
        "cloudfront",
        {
            "base_url": "https://d111111abcdef8.cloudfront.net",
            "delivery": "cookie",
            "cookie_domain": "cloudfront.net",
            "keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": "keys/appendix-a-rsa2048.pem"}],
        },
    ),
    "cloudfront_canned_per_url": (
        "cloudfront",
        {
            "base_url": "https://d111111abcdef8.cloudfront.net",
            "policy": "canned",
            "keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": "keys/appendix-a-rsa2048.pem"}],
        },
    ),
    "akamai_acl_query": (
        "akamai",
        {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "acl"},
    ),
    "cloud_cdn_url_prefix": (
        "cloud_cdn",
        {
            "base_url": "https://media.example.com",
            "form": "url_prefix",
            "keys": [{"name": "key-1", "secret": "nZtRohdNF9m3cKM24IcK4w"}],
        },
    ),
    "media_cdn_url_prefix": (
        "media_cdn",
        {
            "base_url": "https://media.example.com",
            "form": "url_prefix",
            "keys": [{"name": "key-1", "private_key": SEED}],
        },
    ),
    "media_cdn_dualtoken_query": (
        "media_cdn_dualtoken",
        {"algorithm": "ed25519", "keys": [{"name": "k1", "private_key": SEED}]},
    ),
    "nginx_secure_link_prefix": (
        "nginx_secure_link",
        {"secret": "s3cret", "expression": "{expires}{prefix} {secret}"},
    ),
    "nginx_secure_link_per_url": (
        "nginx_secure_link",
        {"secret": "s3cret", "expression": "{expires}{uri} {secret}"},
    ),
    "cloudflare_stream_path": (
        "cloudflare_stream",
        {
            "customer_code": "f33zs165nr7gyfy4",
            "prefix_template": "/{uid}/",
            "keys": [{"kid": "8f926b2b01f383510025a78a4dcbf6a", "private_key_file": "keys/appendix-a-rsa2048.pem"}],
        },
    ),
    "mux_query": (
        "mux",
        {
            "prefix_template": "/{playback_id}/",
            "keys": [{"kid": "Ab01cd23EfGh45", "private_key_file": "keys/appendix-a-rsa2048.pem"}],
        },
    ),
    "cat_query": (
        "cat",
        {
            "issuer": "gateway.example",
            "host": "cat-edge.example.com",
            "scheme": "https",
            "delivery": "query",
            "keys": [
                {"kid": "Symmetric256", "secret": "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"}
            ],
        },
    ),
}
# CAT tokens carry a random cti: their golden files compare with the token masked (verified separately).
MASKS = {"cat_query": re.compile(r"cat=[A-Za-z0-9_-]+")}
BASE_URLS = {
    "akamai": "https://edge.example.net",
    "media_cdn_dualtoken": "https://media.example.com",
    "nginx_secure_link": "https://nginx-edge.example.org",
    "cloudflare_stream": "https://customer-f33zs165nr7gyfy4.cloudflarestream.com",
    "mux": "https://stream.mux.com",
    "cat": "https://cat-edge.example.com",
}


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with static_origin(CDN_DIR / "origin") as (url, _):
        yield url


def dialect_for(case: str) -> Dialect:
    name, table = CASES[case]
    return load_dialect(name, table, base_dir=KEYS_DIR)


def cdn_base(case: str) -> str:
    name, table = CASES[case]
    base = str(table.get("base_url") or BASE_URLS[name]).rstrip("/")
    return base + "/" if name in ("mux", "cloudflare_stream") else base + "/vod/"


def title(case: str) -> str:
    """Mux playback ids are alphanumeric, so its case uses a title directory without a hyphen."""
    return "/vod/Title9000/" if case == "mux_query" else "/vod/title-9000/"


def session_token(case: str, *, scope: Scope = Scope.ALL) -> str:
    """The session token (5 min), or with `scope=PLAYLIST` the variant URLs' token (until the cap)."""
    expires = NOW + 3600 if scope is Scope.PLAYLIST else NOW + 300
    grant = Grant((title(case),), expires, session_id="S1", scope=scope, session_ends_at=NOW + 3600)
    return sign_grant(grant, RING)


async def fetch(origin: str, case: str, path: str, *, scope: Scope = Scope.ALL) -> httpx.Response:
    name = CASES[case][0]
    settings = Settings(
        keys=RING,
        routes=(Route(mount="/vod/", origin=origin + "vod/", cdn=name, cdn_base_url=cdn_base(case)),),
        dialects={name: dialect_for(case)},
    )
    app = build_app(settings, clock=FakeClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        token = session_token(case, scope=scope)
        return await client.get(f"{path.replace('/vod/title-9000/', title(case))}?token={token}")


def golden_path(case: str) -> Path:
    return CDN_DIR / f"{case}.expected.m3u8"


async def golden_body(origin: str, case: str) -> bytes:
    """What `<case>.expected.m3u8` must hold (scripts/update_goldens.py writes it from here)."""
    response = await fetch(origin, case, "/vod/title-9000/v1/index.m3u8")
    assert response.status_code == 200, response.text
    if case in MASKS:
        return MASKS[case].sub("cat=TOKEN", response.text).encode()
    return response.content


@pytest.mark.parametrize("case", sorted(CASES))
async def test_cdn_manifest_golden(origin: str, case: str) -> None:
    """Read-only: after a deliberate change, regenerate with scripts/update_goldens.py and review the diff."""
    assert await golden_body(origin, case) == golden_path(case).read_bytes()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_every_cdn_url_verifies_at_that_cdn_and_tampering_fails(origin: str, case: str) -> None:
    response = await fetch(origin, case, "/vod/title-9000/v1/index.m3u8")
    base = cdn_base(case).split("/vod/")[0]
    lines = response.text.splitlines()
    cdn_urls = [line for line in lines if line.startswith(base)]
    cdn_urls += re.findall(r'URI="(' + re.escape(base) + r'[^"]+)"', response.text)
    assert len(cdn_urls) == 4  # three segments and the init section
    assert 'URI="../key.key?token=' in response.text  # keys stay on the gateway, with its own token
    # The bytes a CDN reads: everything after the first '=' up to ';' (no unquoting, as no CDN unquotes).
    pairs = [header.split(";", 1)[0].split("=", 1) for header in response.headers.get_list("set-cookie")]
    cookies = {name: value for name, value in pairs if name != "gw_token"}
    dialect = dialect_for(case)
    for url in cdn_urls:
        grant = dialect.verify(EdgeRequest(url, cookies), now=NOW + 10)
        on_cdn = title(case) if cdn_base(case).endswith("/vod/") else title(case).removeprefix("/vod")
        assert any(on_cdn.startswith(p) or p.startswith(on_cdn) for p in grant.path_prefixes), grant
        with pytest.raises(TokenDenied) as info:
            dialect.verify(EdgeRequest(url, cookies), now=NOW + 36000)
        assert info.value.reason is Denial.EXPIRED
    if title(case) in cdn_urls[0]:  # prefix-in-path dialects (not the path-token or root-mapped ones)
        outside = cdn_urls[0].replace(title(case), "/vod/title-9001/")
        with pytest.raises(TokenDenied):
            dialect.verify(EdgeRequest(outside, cookies), now=NOW + 10)


@pytest.mark.parametrize("case", ["cloudfront_custom_query", "akamai_acl_query", "nginx_secure_link_per_url"])
async def test_cdn_urls_in_a_vod_playlist_live_until_the_session_cap(origin: str, case: str) -> None:
    """A VOD playlist is loaded once (by a variant URL's playlist token): what it carries must last the film."""
    response = await fetch(origin, case, "/vod/title-9000/v1/index.m3u8", scope=Scope.PLAYLIST)
    base = cdn_base(case).split("/vod/")[0]
    cdn_urls = [line for line in response.text.splitlines() if line.startswith(base)]
    assert cdn_urls
    dialect = dialect_for(case)
    for url in cdn_urls:
        dialect.verify(EdgeRequest(url, {}), now=NOW + 3590)  # 12 media TTLs later: still valid
        with pytest.raises(TokenDenied) as info:
            dialect.verify(EdgeRequest(url, {}), now=NOW + 3600 + 60)  # never past the session's cap
        assert info.value.reason is Denial.EXPIRED


async def test_master_playlists_stay_on_the_gateway(origin: str) -> None:
    response = await fetch(origin, "cloudfront_custom_query", "/vod/title-9000/master.m3u8")
    assert "cloudfront" not in response.text and "v1/index.m3u8?token=" in response.text


def test_prefix_dialect_signs_once_per_bucket() -> None:
    from gateway.http.cdn import CdnSigner

    calls: list[str | None] = []
    dialect = dialect_for("cloudfront_custom_query")

    class Counting(DialectDefaults):
        name, prefix_signing = dialect.name, True

        def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Any:
            calls.append(url)
            return dialect.sign(grant, url=url)

        def verify(self, request: EdgeRequest, *, now: float) -> Grant:
            return dialect.verify(request, now=now)

        @property
        def query_params(self) -> tuple[str, ...]:
            return dialect.query_params

        def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
            return dialect.edge_path(raw_path, grant)

    route = Route(
        mount="/vod/",
        origin="http://origin.test/vod/",
        cdn="cloudfront",
        cdn_base_url=cdn_base("cloudfront_custom_query"),
    )
    signer = CdnSigner(CdnBinding(Counting(), "query"), route)
    grant = Grant(("/vod/title-9000/",), NOW + 300)
    started = time.perf_counter()
    for _ in range(1000):
        signer.credentials(grant)
    assert calls == [None] and time.perf_counter() - started < 0.5
