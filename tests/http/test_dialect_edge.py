"""The gateway as a CDN's edge: a route whose requests carry a dialect's token (CTA-5007 CAT, with catr
renewal under both header names, as a cookie or as a redirect; Akamai EdgeAuth), and what an edge route
does for every dialect: path credentials inherited by every URI, credentials never in the manifest cache
key, per-URL dialects signing each listed URI once, MPDs. The player walk over real HTTP for every
dialect is tests/integration/test_dialect_edge_walk.py."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.errors import Denial, TokenDenied
from gateway.http.app import build_app
from gateway.http.cors import CorsPolicy
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import (
    NO_OPTIONS,
    Credentials,
    Dialect,
    DialectDefaults,
    EdgePath,
    EdgeRequest,
    SigningOptions,
)
from gateway.tokens.dialects.cat import CatDialect
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from tests.http.test_cdn_manifests import CDN_DIR
from tests.support.clock import FakeClock
from tests.support.paths import FIXTURES
from tests.support.recording import RecordingApp

NOW = 1_800_000_000
SECRET = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"
RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
TITLE = "/vod/title-9000/"


def cat_table(renewal: str | None) -> dict[str, Any]:
    table: dict[str, Any] = {"issuer": "gateway.example", "keys": [{"kid": "Symmetric256", "secret": SECRET}]}
    if renewal:
        table["renewal"] = {"type": renewal, "expadd_seconds": 120, "deadline_seconds": 60}
    return table


@pytest.fixture(scope="module")
def origin_app() -> Iterator[RecordingApp]:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    yield RecordingApp(Starlette(routes=[Mount("/", app=StaticFiles(directory=CDN_DIR / "origin"))]))


def client_for(
    origin: RecordingApp, name: str, table: dict[str, Any], cors: CorsPolicy | None = None
) -> tuple[httpx.AsyncClient, Any]:
    dialect = load_dialect(name, table, base_dir=CDN_DIR)
    settings = Settings(
        keys=KeyRing((HmacKey("k1", b"\x01" * 32),)),
        routes=(Route(mount="/vod/", origin="http://origin.test/vod/", edge=name),),
        dialects={name: dialect},
        cors=cors or CorsPolicy(),
    )
    app = build_app(settings, clock=FakeClock(NOW), origin_transport=httpx.ASGITransport(app=origin))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test"), dialect


def cat_token(dialect: CatDialect, expires_in: int) -> str:
    return dialect.issue(Grant((TITLE,), NOW + expires_in), issued_at=NOW - 10)


async def test_cat_query_token_is_verified_and_playlists_carry_it(origin_app: RecordingApp) -> None:
    client, dialect = client_for(origin_app, "cat", cat_table(None))
    async with client:
        token = cat_token(dialect, 600)
        response = await client.get(f"{TITLE}v1/index.m3u8?cat={token}")
        assert response.status_code == 200, response.text
        assert f"init.mp4?cat={token}" in response.text and f"seg_000.m4s?cat={token}" in response.text
        assert (await client.get(f"{TITLE}v1/seg_000.m4s?cat={token}")).status_code == 404  # verified; no file
        assert all("cat=" not in seen.query for seen in origin_app.seen)  # the token never goes upstream
        missing = await client.get(f"{TITLE}v1/index.m3u8")
        assert missing.status_code == 401 and missing.json()["error"] == "missing"
        tampered = await client.get(f"{TITLE}v1/index.m3u8?cat={token[:-6]}AAAAAA")
        assert tampered.status_code == 403 and tampered.json()["error"] in ("bad_signature", "malformed")
        other = await client.get(f"/vod/title-9001/v1/index.m3u8?cat={token}")
        assert other.status_code == 403 and other.json()["error"] == "acl"


async def test_cat_header_renewal_uses_both_header_names_and_cors(origin_app: RecordingApp) -> None:
    client, dialect = client_for(origin_app, "cat", cat_table("header"))
    async with client:
        not_due = await client.get(f"{TITLE}master.m3u8", headers={"CTA-Common-Access-Token": cat_token(dialect, 600)})
        assert not_due.status_code == 200 and "cta-common-access-token" not in not_due.headers
        due = await client.get(f"{TITLE}master.m3u8", headers={"CTA-Common-Access-Token": cat_token(dialect, 30)})
        assert due.status_code == 200
        renewed = due.headers["cta-common-access-token"]
        assert due.headers["common-access-token"] == renewed
        exposed = ",".join(due.headers.get_list("access-control-expose-headers")).lower()
        assert "cta-common-access-token" in exposed and "common-access-token" in exposed
        grant = dialect.verify(
            EdgeRequest("http://gw.test" + TITLE + "master.m3u8", headers={"CTA-Common-Access-Token": renewed}),
            now=NOW + 100,
        )
        assert grant.expires_at == NOW + 120


async def test_cat_redirect_and_cookie_renewal(origin_app: RecordingApp) -> None:
    client, dialect = client_for(origin_app, "cat", cat_table("redirect"))
    async with client:
        response = await client.get(f"{TITLE}v1/index.m3u8?cat={cat_token(dialect, 30)}")
        assert response.status_code in (302, 307)
        location = urlsplit(response.headers["location"])
        assert location.path == f"{TITLE}v1/index.m3u8" and "cat" in parse_qs(location.query)
    client, dialect = client_for(origin_app, "cat", cat_table("cookie"))
    async with client:
        response = await client.get(f"{TITLE}v1/index.m3u8?cat={cat_token(dialect, 30)}")
        assert response.status_code == 200 and "set-cookie" in response.headers


async def test_cat_renewal_reaches_a_player_on_a_listed_site(origin_app: RecordingApp) -> None:
    # A credentialed cross-site player must be able to follow the redirect and read the renewal headers,
    # including a catr header-name the dialect adds to its own Access-Control-Expose-Headers.
    player = {"origin": "https://player.example"}
    cors = CorsPolicy(frozenset({player["origin"]}))
    client, dialect = client_for(origin_app, "cat", cat_table("redirect"), cors)
    async with client:
        redirect = await client.get(f"{TITLE}v1/index.m3u8?cat={cat_token(dialect, 30)}", headers=player)
        assert redirect.status_code in (302, 307) and redirect.headers["location"]
        assert redirect.headers["access-control-allow-origin"] == player["origin"]
        assert redirect.headers["access-control-allow-credentials"] == "true"
        assert redirect.headers["vary"] == "Origin"
    table = cat_table("header")
    table["renewal"]["header_name"] = "X-Cat-Renewed"
    client, dialect = client_for(origin_app, "cat", table, cors)
    async with client:
        headers = {**player, "CTA-Common-Access-Token": cat_token(dialect, 30)}
        due = await client.get(f"{TITLE}master.m3u8", headers=headers)
        assert due.status_code == 200 and due.headers["x-cat-renewed"]
        assert due.headers["access-control-allow-origin"] == player["origin"]
        exposed = due.headers.get_list("access-control-expose-headers")
        assert len(exposed) == 1, "one merged list"
        assert {"cta-common-access-token", "common-access-token", "x-cat-renewed", "x-token-denial"} <= {
            name.strip().lower() for name in exposed[0].split(",")
        }


async def test_cat_5007b_claims_at_the_gateway_edge(origin_app: RecordingApp) -> None:
    # catm from the signing options, cattprint against the TLS terminator's header, catdpop and unknown
    # critical claims refused with the claim's name (issue 11.4).
    table = cat_table(None) | {"tls_fingerprint_headers": {"ja4": "X-JA4"}}
    client, dialect = client_for(origin_app, "cat", table)
    ja4 = "t13d1516h2_8daaf6152771_b186095e22b6"

    def token(extra: Mapping[int, Any] | None = None) -> str:
        claims = dialect.claims_for(
            Grant((TITLE,), NOW + 600), issued_at=NOW, cti=b"c" * 16, options=SigningOptions(method="GET")
        )
        return str(dialect.encode_claims(claims | {324: {0: 2, 1: ja4}} | (extra or {})))

    async with client:
        url = f"{TITLE}master.m3u8"
        ok = await client.get(url, headers={"CTA-Common-Access-Token": token(), "X-JA4": ja4})
        assert ok.status_code == 200, ok.text
        head = await client.head(url, headers={"CTA-Common-Access-Token": token(), "X-JA4": ja4})
        assert head.status_code == 403 and head.headers["x-token-denial"] == "scope"
        for sent in ({}, {"X-JA4": "t13d1516h2_8daaf6152771_000000000000"}):
            refused = await client.get(url, headers={"CTA-Common-Access-Token": token(), **sent})
            assert refused.status_code == 403 and refused.json()["error"] == "ip", refused.text
        for extra, named in (({321: {0: 300}}, "catdpop (321)"), ({45: [317]}, "catgeocoord (317)")):
            refused = await client.get(url, headers={"CTA-Common-Access-Token": token(extra), "X-JA4": ja4})
            assert refused.status_code == 403 and refused.json()["error"] == "malformed"
            assert named in refused.json()["detail"]


async def test_akamai_acl_token_at_the_gateway_edge(origin_app: RecordingApp) -> None:
    table = {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "acl"}
    client, dialect = client_for(origin_app, "akamai", table)
    async with client:
        query = dialect.sign(Grant((TITLE,), NOW + 600)).query_string()
        assert (await client.get(f"{TITLE}master.m3u8?{query}")).status_code == 200
        refused = await client.get(f"/vod/title-9001/master.m3u8?{query}")
        assert refused.status_code == 403 and refused.json()["error"] == "acl"


async def test_an_edge_route_forwards_neither_its_token_nor_junk_upstream(origin_app: RecordingApp) -> None:
    # Only the LL-HLS directives (and a route's forward_query) go upstream: not Akamai's `hdnts`, not junk.
    table = {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "acl"}
    client, dialect = client_for(origin_app, "akamai", table)
    before = len(origin_app.seen)
    async with client:
        query = dialect.sign(Grant((TITLE,), NOW + 600)).query_string()
        for path in ("master.m3u8", "v1/seg_000.m4s"):
            response = await client.get(f"{TITLE}{path}?x=1&{query}&_HLS_msn=3")
            assert response.status_code in (200, 404), response.text  # verified (no such segment file)
    assert [seen.query for seen in origin_app.seen[before:]] == ["_HLS_msn=3", "_HLS_msn=3"]


async def test_jwks_publishes_public_keys_only(origin_app: RecordingApp) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from gateway.tokens.keys import Ed25519Key, b64url_decode, b64url_encode, parse_key
    from tests.http.test_cdn_manifests import KEYS_DIR

    pem = (KEYS_DIR / "keys/appendix-a-rsa2048.pem").read_text()
    mux = load_dialect("mux", {"keys": [{"kid": "Ab01cd23EfGh45", "private_key": pem}]}, base_dir=CDN_DIR)
    ed = parse_key("e1:ed25519:" + b64url_encode(b"\x05" * 32))
    assert isinstance(ed, Ed25519Key)
    settings = Settings(
        keys=KeyRing((ed, HmacKey("k1", b"\x01" * 32))),
        routes=(Route(mount="/vod/", origin="http://origin.test/vod/"),),
        dialects={"mux": mux},
    )
    app = build_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert {k["kid"] for k in keys} == {"Ab01cd23EfGh45", "e1"}  # the HMAC key k1 is never published
    assert all("d" not in k for k in keys)  # no private parts
    public = serialization.load_pem_private_key(pem.encode(), None).public_key()
    rsa = next(k for k in keys if k["kty"] == "RSA")
    assert isinstance(public, RSAPublicKey)
    assert int.from_bytes(b64url_decode(rsa["n"]), "big") == public.public_numbers().n


# -- every dialect as the edge: what goes upstream, what playlists carry ---------------------------------

GW = "http://gw.test"
RSA_KEY = "keys/appendix-a-rsa2048.pem"  # under fixtures/dialects


def edge_client(
    origin: Any, name: str, table: dict[str, Any], *, mount: str = "/vod/", dialect: Dialect | None = None
) -> tuple[httpx.AsyncClient, Dialect, Any]:
    """A gateway whose route at `mount` is `name`'s edge, in front of `origin` (ASGI); also returns the app."""
    from tests.http.test_cdn_manifests import KEYS_DIR

    dialect = dialect or load_dialect(name, table, base_dir=KEYS_DIR)
    upstream = "http://origin.test/vod/" if mount == "/vod/" else "http://origin.test/"
    # `part`: a parameter the origin writes into its own playlists (forwarded because the route lists it).
    routes = (Route(mount=mount, origin=upstream, edge=name, forward_query=("part",)),)
    settings = Settings(keys=RING, routes=routes, dialects={name: dialect})
    app = build_app(settings, clock=FakeClock(NOW), origin_transport=httpx.ASGITransport(app=origin))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GW), dialect, app


def uri_lines(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")] + re.findall(
        r'URI="([^"]+)"', playlist
    )


def _cloudflare_url(dialect: Dialect, grant: Grant) -> str:
    return f"/{dialect.sign(grant).path_token}/v1/index.m3u8"


def _media_cdn_url(dialect: Dialect, grant: Grant) -> str:
    signed = dialect.sign(grant, url=f"{GW}{grant.path_prefixes[0]}v1/index.m3u8").url
    assert signed is not None
    return signed.removeprefix(GW)


def _mux_url(dialect: Dialect, grant: Grant) -> str:
    signed = dialect.sign(grant, url=f"{GW}/Title9000/v1/index.m3u8").url
    assert signed is not None
    return signed.removeprefix(GW)


MAPPED: dict[str, tuple[dict[str, Any], str, str, Any]] = {
    "cloudflare_stream": (
        {
            "customer_code": "f33zs165nr7gyfy4",
            "prefix_template": "/vod/{uid}/",
            "keys": [{"kid": "k1", "private_key_file": RSA_KEY}],
        },
        "/",
        TITLE,
        _cloudflare_url,
    ),
    "media_cdn": (
        {
            "base_url": GW,
            "form": "path",
            "keys": [{"name": "key-1", "private_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}],
        },
        "/vod/",
        TITLE,
        _media_cdn_url,
    ),
    "mux": (
        {"prefix_template": "/vod/{playback_id}/", "keys": [{"kid": "Ab01cd23EfGh45", "private_key_file": RSA_KEY}]},
        "/",
        "/vod/Title9000/",
        _mux_url,
    ),
}


@pytest.mark.parametrize("name", sorted(MAPPED))
async def test_a_path_credential_is_inherited_even_by_uris_the_origin_wrote_root_relative(
    origin_app: RecordingApp, name: str
) -> None:
    """Cloudflare Stream's token and Media CDN's path component replace or follow the title prefix, and Mux
    URLs put the playback id first: the origin's `/vod/<title>/v1/seg_002.m4s` is written relative, so it
    keeps the request's prefix; the origin is asked for the plain resource path, never a token."""
    table, mount, title, signed_url = MAPPED[name]
    client, dialect, _ = edge_client(origin_app, name, table, mount=mount)
    async with client:
        url = signed_url(dialect, Grant((title,), NOW + 600))
        before = len(origin_app.seen)
        response = await client.get(url)
        assert response.status_code == 200, response.text
        uris = uri_lines(response.text)
        assert all(not uri.startswith("/") for uri in uris), uris
        assert any(uri.split("?")[0] == "seg_002.m4s" for uri in uris)  # was /vod/<title>/v1/seg_002.m4s
        for uri in uris:
            child = await client.get(urljoin(GW + url, uri))
            # Verified and forwarded: the origin has no such file (a denial would be 401/403).
            assert (child.status_code, child.headers.get("x-gateway-error")) == (404, "origin_status"), uri
        seen = origin_app.seen[before:]
        assert {s.path for s in seen} == {
            title + p
            for p in ("v1/index.m3u8", "key.key", "v1/init.mp4", "v1/seg_000.m4s", "v1/seg_001.m4s", "v1/seg_002.m4s")
        }
        assert {s.query for s in seen} == {"", "part=a"}  # the origin's own query survives; no credential


async def test_viewers_with_different_credentials_share_one_prepared_playlist(origin_app: RecordingApp) -> None:
    """The credential is not in the manifest cache key: two viewers cost the origin one fetch."""
    table = {"base_url": GW, "keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": RSA_KEY}]}
    client, dialect, _ = edge_client(origin_app, "cloudfront", table)
    async with client:
        before = len(origin_app.seen)
        bodies = []
        for ttl in (600, 900):
            query = dialect.sign(Grant((TITLE,), NOW + ttl)).query_string()
            response = await client.get(f"{TITLE}v1/index.m3u8?{query}")
            assert response.status_code == 200 and f"seg_000.m4s?{query}" in response.text
            assert f"seg_001.m4s?part=a&{query}" in response.text
            bodies.append(response.text)
        assert bodies[0] != bodies[1]
        assert [s.path for s in origin_app.seen[before:]] == [f"{TITLE}v1/index.m3u8"]


class CountingSigner(DialectDefaults):
    """A dialect that counts `sign` calls (everything else delegated)."""

    def __init__(self, inner: Dialect) -> None:
        self.inner = inner
        self.calls: list[str | None] = []
        self.name, self.prefix_signing, self.query_params = inner.name, inner.prefix_signing, inner.query_params

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        self.calls.append(url)
        return self.inner.sign(grant, url=url)

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        return self.inner.verify(request, now=now)

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        return self.inner.edge_path(raw_path, grant)


async def test_per_url_dialect_signs_each_uri_once_for_the_grant_never_longer(origin_app: RecordingApp) -> None:
    table = {"secret": "s3cret", "expression": "{expires}{uri} {secret}"}
    counting = CountingSigner(load_dialect("nginx_secure_link", table, base_dir=CDN_DIR))
    client, _, _ = edge_client(origin_app, "nginx_secure_link", table, dialect=counting)
    async with client:
        signed = counting.inner.sign(Grant((TITLE,), NOW + 300), url=f"{GW}{TITLE}v1/index.m3u8").url
        assert signed is not None
        first = await client.get(signed.removeprefix(GW))
        assert first.status_code == 200, first.text
        uris = uri_lines(first.text)
        assert len(counting.calls) == len(uris) == 5  # key, init, three segments: one signature each
        assert "seg_001.m4s?part=a&md5=" in first.text  # the origin's own query kept, inside the signed URL
        for uri in uris:
            grant = counting.inner.verify(EdgeRequest(urljoin(signed, uri)), now=NOW)
            assert grant.expires_at == NOW + 300  # exactly the incoming credential's expiry
        again = await client.get(signed.removeprefix(GW))
        assert again.text == first.text and len(counting.calls) == 5  # cached per URL and grant


@pytest.fixture(scope="module")
def dash_origin() -> Iterator[RecordingApp]:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from tests.http.test_cdn_manifests import HERE

    yield RecordingApp(Starlette(routes=[Mount("/vod/", app=StaticFiles(directory=HERE / "dash"))]))


async def test_mpd_on_an_edge_route_carries_the_credential_xml_escaped(dash_origin: RecordingApp) -> None:
    from xml.etree import ElementTree

    table = {"base_url": GW, "keys": [{"id": "K2JCJMDEHXQW5F", "private_key_file": RSA_KEY}]}
    client, dialect, _ = edge_client(dash_origin, "cloudfront", table)
    async with client:
        query = dialect.sign(Grant(("/vod/",), NOW + 600)).query_string()
        response = await client.get(f"/vod/segment_list.mpd?{query}")
        assert response.status_code == 200, response.text
        assert f"seg-2.m4s?v=2&amp;{query.replace('&', '&amp;')}" in response.text
        namespace = {"d": "urn:mpeg:dash:schema:mpd:2011"}
        root = ElementTree.fromstring(response.content)  # noqa: S314 (our fixture, through our gateway)
        media = [e.get("media") for e in root.iterfind(".//d:SegmentURL", namespace)]
        assert f"video/low/seg-1.m4s?{query}" in media and f"video/low/seg-2.m4s?v=2&{query}" in media
        assert "https://origin.example/video/high/seg-1.m4s" in media  # another host: never a credential
        assert all("Policy=" not in s.query for s in dash_origin.seen)


async def test_mpd_on_a_per_url_edge_route_signs_each_listed_url(dash_origin: RecordingApp) -> None:
    from xml.etree import ElementTree

    table = {"secret": "s3cret", "expression": "{expires}{uri} {secret}"}
    client, dialect, _ = edge_client(dash_origin, "nginx_secure_link", table)
    async with client:
        for name in ("segment_list.mpd", "ffmpeg_template_timeline.mpd"):
            signed = dialect.sign(Grant(("/vod/",), NOW + 600), url=f"{GW}/vod/{name}").url
            assert signed is not None
            response = await client.get(signed.removeprefix(GW))
            assert response.status_code == 200, response.text
            root = ElementTree.fromstring(response.content)  # noqa: S314 (our fixture, through our gateway)
            for element in root.iter():
                for attribute in ("media", "sourceURL", "index"):
                    value = element.get(attribute)
                    if value is None or not element.tag.endswith(
                        ("SegmentURL", "Initialization", "RepresentationIndex")
                    ):
                        continue
                    if value.startswith(("https:", "data:")):
                        assert "md5=" not in value
                        continue
                    grant = dialect.verify(EdgeRequest(urljoin(signed, value)), now=NOW)
                    assert grant.expires_at == NOW + 600
            original = (FIXTURES / "dash" / name).read_text()
            templates = re.findall(r'media="([^"]*\$[^"]*)"', original)
            assert all(f'media="{t}"' in response.text for t in templates)  # a template names many URLs: unsigned


def test_id_first_layouts_map_through_the_prefix_template() -> None:
    from tests.http.test_cdn_manifests import KEYS_DIR

    keys = [{"kid": "Ab01cd23EfGh45", "private_key_file": RSA_KEY}]
    mux = load_dialect("mux", {"prefix_template": "/vod/{playback_id}/", "keys": keys}, base_dir=KEYS_DIR)
    grant = Grant(("/vod/Title9000/",), NOW + 600)
    assert mux.edge_path("/Title9000.m3u8", grant) == EdgePath("/vod/Title9000.m3u8", "/vod/Title9000/")  # Mux's master
    assert mux.edge_path("/Title9000/v1/a.ts", grant) == EdgePath("/vod/Title9000/v1/a.ts", "/vod/Title9000/")
    with pytest.raises(TokenDenied) as refused:
        mux.edge_path("/Title90001/v1/a.ts", grant)
    assert refused.value.reason is Denial.ACL
    table = {
        "customer_code": "abc",
        "prefix_template": "/vod/{uid}/",
        "keys": [{"kid": "k1", "private_key_file": RSA_KEY}],
    }
    stream = load_dialect("cloudflare_stream", table, base_dir=KEYS_DIR)
    token = stream.sign(Grant(("/vod/uid-1/",), NOW + 600)).path_token
    assert stream.edge_path(f"/{token}/manifest/video.m3u8", Grant(("/vod/uid-1/",), NOW + 600)) == EdgePath(
        "/vod/uid-1/manifest/video.m3u8", "/vod/uid-1/"
    )


@pytest.mark.parametrize(
    ("reference", "directory", "relative"),
    [
        ("/vod/t/v1/seg.ts", "/vod/t/v1/", "seg.ts"),
        ("/vod/t/key.key?x=1#f", "/vod/t/v1/", "../key.key?x=1#f"),
        ("/vod/t/v2/", "/vod/t/v1/", "../v2/"),
        ("/vod/t/v1/", "/vod/t/v1/", "./"),
        ("/vod/t/a:b.ts", "/vod/t/", "./a:b.ts"),  # 'a:' would read as a scheme
        ("/vod/t/v1/x.m3u8", "/vod/", "t/v1/x.m3u8"),
    ],
)
def test_relative_reference(reference: str, directory: str, relative: str) -> None:
    from gateway.http.links import relative_reference

    assert relative_reference(reference, directory) == relative
    assert urljoin("http://h" + directory + "p.m3u8", relative) == "http://h" + reference


@pytest.mark.parametrize(
    ("uri", "head", "tail"),
    [
        ("a.ts", "a.ts?", ""),
        ("a.ts?x=1", "a.ts?x=1&", ""),
        ("a.ts?x=1&", "a.ts?x=1&", ""),
        ("a.ts?Signature=old&x=1&Policy", "a.ts?x=1&", ""),  # a repeated security parameter is refused
        ("a.ts?#frag", "a.ts?", "#frag"),
    ],
)
def test_with_query_credentials(uri: str, head: str, tail: str) -> None:
    from gateway.manifests.template import Slot
    from gateway.manifests.uris import with_query_credentials

    assert with_query_credentials(uri, ("Policy", "Signature"), Slot.MEDIA) == (head, Slot.MEDIA, tail)


def test_split_query_keeps_both_halves_in_order() -> None:
    from gateway.http.request_facts import split_query

    query = "_HLS_msn=3&Policy=p&x=1&Signature=s&&Key-Pair-Id=K"
    assert split_query(query, ("Policy", "Signature", "Key-Pair-Id")) == (
        "_HLS_msn=3&x=1",
        "Policy=p&Signature=s&Key-Pair-Id=K",
    )
    assert split_query("", ("a",)) == ("", "") and split_query("a=1", ()) == ("a=1", "")


async def test_a_cookie_credential_is_read_beside_other_sites_cookies_and_from_old_quoted_writers(
    origin_app: RecordingApp,
) -> None:
    """An edge reads the dialect's cookie as a CDN does: '=' and '/' in the value, another site's malformed
    cookie in the same header beside it (SimpleCookie dropped every cookie then: `missing`), and the quoted
    form the old writer sent browsers, whose quotes are no part of a valid value."""
    table = {"key": "aabbccddeeff00112233445566778899", "delivery": "cookie", "token_name": "hdnts"}
    client, dialect = client_for(origin_app, "akamai", table)
    (cookie,) = dialect.sign(Grant((TITLE,), NOW + 600)).cookies
    assert "=" in cookie.value and "/" in cookie.value
    async with client:
        for header in (
            f"hdnts={cookie.value}",
            f'junk=a b; flag; hdnts={cookie.value}; x="y',
            f'hdnts="{cookie.value}"',
        ):
            response = await client.get(f"{TITLE}v1/index.m3u8", headers={"cookie": header})
            assert response.status_code == 200, (header, response.text)
        outside = await client.get(
            "/vod/title-9001/v1/index.m3u8", headers={"cookie": f"junk=a b; hdnts={cookie.value}"}
        )
        assert outside.status_code == 403 and outside.json()["error"] == "acl"
