"""Each delivery's manifest writer on its own (issue 9.5): how it prepares a manifest (rewriter, cache
variant), what it renders for one request, and which cookies go with the response. No server, no origin:
an Access is built by hand (tests/support/access.py) and manifests are prepared from bytes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import Delivery
from gateway.http.access import Access, EdgeCarry
from gateway.http.links import Carry
from gateway.http.writers import ManifestWriter, prepare_manifest, writer_for
from gateway.http.writers.cdn import CdnWriter
from gateway.http.writers.cookie import CookieWriter, HybridWriter
from gateway.http.writers.dialect import DialectEdgeWriter
from gateway.http.writers.path import PathWriter
from gateway.http.writers.query import QueryWriter
from gateway.manifests.template import PreparedManifest
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import EdgeRequest
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import inspect_token, sign_grant
from gateway.tokens.scoped import ScopedTokenMinter
from tests.support.access import NOW, access_for

KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
TITLE = "/vod/title-9000/"
ENDS = NOW + 4 * 3600  # the session's cap
SESSION = Grant((TITLE,), NOW + 300, session_id="s-1", scope=Scope.ALL, session_ends_at=ENDS)
MINTER = ScopedTokenMinter(KEYS, media_ttl_seconds=300)

MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv1/index.m3u8\n"
VOD = (
    b'#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n#EXTINF:6,\nseg_000.ts\n#EXT-X-ENDLIST\n'
)
LIVE = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nseg_000.ts\n#EXTINF:6,\n/vod/title-9000/v1/seg_001.ts\n"
MPD = (
    b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"><Period><AdaptationSet>'
    b'<Representation id="v" bandwidth="1"><SegmentTemplate media="v/$Number$.m4s" initialization="v/init.mp4"/>'
    b"</Representation></AdaptationSet></Period></MPD>\n"
)


def written(writer: ManifestWriter, access: Access, body: bytes) -> tuple[PreparedManifest, str]:
    """The manifest as `writer` prepares it for `access`, and as it renders it for that request."""
    manifest = prepare_manifest(access.origin_url, body, writer.rewriter(access), max_bytes=1 << 20)
    return manifest, writer.render(manifest, access).decode()


def tokens_in(text: str, param: str = "token") -> list[str]:
    return re.findall(rf"[?&]{param}=([A-Za-z0-9_-]+)", text)


# --- query ----------------------------------------------------------------------------------------------------------


def query_writer() -> tuple[QueryWriter, Route]:
    route = Route(mount="/vod/", origin="http://origin.test/vod/")
    return QueryWriter(route, token_param="token", minter=MINTER), route


def test_query_writes_scoped_tokens_playlists_until_the_cap() -> None:
    writer, route = query_writer()
    session_token = sign_grant(SESSION, KEYS)
    access = access_for(route, SESSION, session_token, path=f"{TITLE}master.m3u8")
    _, text = written(writer, access, MASTER)
    (variant_token,) = tokens_in(text)
    playlist = inspect_token(variant_token)
    assert playlist.scope is Scope.PLAYLIST and playlist.expires_at == ENDS
    assert writer.variant(access) == "query:/vod/" and writer.cookies(access, None) == []


def test_query_media_tokens_follow_what_the_player_can_refresh() -> None:
    writer, route = query_writer()
    access = access_for(route, SESSION, sign_grant(SESSION, KEYS), path=f"{TITLE}v1/index.m3u8")
    _, vod = written(writer, access, VOD)  # loaded once: segment and key tokens live until the cap
    assert {inspect_token(t).expires_at for t in tokens_in(vod)} == {ENDS}
    assert {inspect_token(t).scope for t in tokens_in(vod)} == {Scope.MEDIA}
    _, live = written(writer, access, LIVE)  # reloaded: short, rolling
    assert all(NOW + 300 <= inspect_token(t).expires_at <= NOW + 450 for t in tokens_in(live))


# --- cookie and hybrid --------------------------------------------------------------------------------------------


def cookie_writer(kind: type[CookieWriter] = CookieWriter) -> tuple[CookieWriter, Route]:
    route = Route(mount="/cookie/", origin="http://origin.test/cookie/", delivery=Delivery.COOKIE)
    return kind(route, sessions=SessionSettings(), minter=MINTER), route


def cookie_attributes(cookie: str) -> dict[str, str]:
    parts = [part.strip() for part in cookie.split(";")]
    return {name.lower(): value for name, _, value in (part.partition("=") for part in parts[1:])}


def test_cookie_manifests_carry_no_token_and_are_the_same_for_every_viewer() -> None:
    writer, route = cookie_writer()
    access = access_for(route, SESSION, sign_grant(SESSION, KEYS), path="/cookie/title/v1/index.m3u8", source="cookie")
    _, text = written(writer, access, LIVE)
    assert "token" not in text and text == LIVE.decode().replace(
        "/vod/title-9000/v1/seg_001.ts", "/vod/title-9000/v1/seg_001.ts"
    )
    assert writer.variant(access) == "cookie:/cookie/"


def test_cookie_is_handed_out_on_first_use_and_rolls_on_a_live_playlist() -> None:
    writer, route = cookie_writer()
    grant = Grant(("/cookie/t/",), NOW + 300, session_id="s", scope=Scope.ALL, session_ends_at=ENDS)
    first = access_for(route, grant, sign_grant(grant, KEYS), path="/cookie/t/v1/index.m3u8", source="query")
    live, _ = written(writer, first, LIVE)
    (cookie,) = writer.cookies(first, live)
    attributes = cookie_attributes(cookie)
    assert cookie.startswith("gw_token=") and attributes["path"] == "/cookie/t/" and "httponly" in attributes
    assert "secure" not in attributes  # plain-HTTP localhost: browsers would drop a Secure cookie there
    fresh = access_for(route, grant, sign_grant(grant, KEYS), path="/cookie/t/v1/index.m3u8", source="cookie")
    assert writer.cookies(fresh, live) == []  # plenty of life left
    later = access_for(
        route, grant, sign_grant(grant, KEYS), path="/cookie/t/v1/index.m3u8", source="cookie", now=NOW + 200
    )
    (renewed,) = writer.cookies(later, live)  # past half its life: re-issued for another TTL, never past the cap
    assert inspect_token(renewed.split(";")[0].split("=", 1)[1]).expires_at == NOW + 200 + 300


def test_cookie_handed_out_with_a_vod_playlist_lasts_until_the_sessions_cap() -> None:
    writer, route = cookie_writer()
    grant = Grant(("/cookie/t/",), NOW + 300, session_id="s", scope=Scope.ALL, session_ends_at=ENDS)
    access = access_for(route, grant, sign_grant(grant, KEYS), path="/cookie/t/v1/index.m3u8", source="cookie")
    vod, _ = written(writer, access, VOD)
    (cookie,) = writer.cookies(access, vod)
    assert int(cookie_attributes(cookie)["max-age"]) == ENDS - NOW
    assert inspect_token(cookie.split(";")[0].split("=", 1)[1]).expires_at == ENDS
    master, _ = written(writer, access, MASTER)  # a master says nothing of its playlists: the cookie keeps rolling
    assert writer.cookies(access, master) == []
    assert writer.cookies(access, None) == []  # a segment request with a fresh cookie


def test_a_path_token_on_a_cookie_route_needs_no_cookie() -> None:
    writer, route = cookie_writer()
    access = access_for(route, SESSION, sign_grant(SESSION, KEYS), path="/cookie/title/seg.ts", source="path")
    assert writer.cookies(access, None) == []


def test_hybrid_exchanges_the_master_token_for_the_cookie() -> None:
    writer, route = cookie_writer(HybridWriter)
    access = access_for(route, SESSION, sign_grant(SESSION, KEYS), path="/cookie/title/master.m3u8", source="query")
    master, text = written(writer, access, MASTER)
    assert "token" not in text and writer.variant(access) == "hybrid:/cookie/"
    (cookie,) = writer.cookies(access, master)
    assert inspect_token(cookie.split(";")[0].split("=", 1)[1]).scope is Scope.ALL


# --- path -------------------------------------------------------------------------------------------------------------


def test_path_tokens_are_inherited_by_relative_uris_and_spliced_into_root_relative_ones() -> None:
    route = Route(mount="/vod/", origin="http://origin.test/vod/", delivery=Delivery.PATH)
    writer = PathWriter(route)
    token = sign_grant(SESSION, KEYS)
    access = access_for(route, SESSION, token, path=f"{TITLE}v1/index.m3u8", source="path")
    _, text = written(writer, access, LIVE)
    assert "\nseg_000.ts\n" in text  # relative: resolves under /t/<token>/ by itself
    assert f"\n/t/{token}/vod/title-9000/v1/seg_001.ts\n" in text
    assert writer.variant(access) == "path:/vod/" and writer.cookies(access, None) == []


# --- CDN -------------------------------------------------------------------------------------------------------------


def cdn_settings(name: str, table: Mapping[str, Any], delivery: Delivery = Delivery.QUERY) -> tuple[Settings, Route]:
    route = Route(
        mount="/vod/",
        origin="http://origin.test/vod/",
        delivery=delivery,
        cdn=name,
        cdn_base_url="https://cdn.test/v/",
    )
    return Settings(keys=KEYS, routes=(route,), dialects={name: load_dialect(name, table, base_dir=Path())}), route


def test_cdn_segments_go_to_the_cdn_with_its_credential_and_keys_stay_on_the_gateway() -> None:
    settings, route = cdn_settings("akamai", {"key": "aabbccddeeff00112233445566778899", "token_type": "acl"})
    writer = writer_for(route, settings, MINTER)
    assert isinstance(writer, CdnWriter) and isinstance(writer.delivery, QueryWriter)
    access = access_for(route, SESSION, sign_grant(SESSION, KEYS), path=f"{TITLE}v1/index.m3u8")
    _, text = written(writer, access, VOD)
    segment = next(line for line in text.splitlines() if "seg_000" in line)
    assert segment.startswith("https://cdn.test/v/title-9000/v1/seg_000.ts?__token__=exp=")
    assert "~acl=/v/title-9000/*~" in segment  # one signature for the title prefix, in the CDN's paths
    assert 'URI="k.key?token=' in text  # cdn_scope = segments: keys stay on the gateway, with our token
    assert writer.variant(access) == "query:/vod/+cdn:akamai"


def test_a_cookie_delivered_cdn_sets_its_cookies_on_manifests_only() -> None:
    table = {"issuer": "gw.example", "keys": [{"kid": "k", "secret": "ab" * 32}], "delivery": "cookie"}
    settings, route = cdn_settings("cat", table, delivery=Delivery.COOKIE)
    writer = writer_for(route, settings, MINTER)
    access = access_for(route, SESSION, sign_grant(SESSION, KEYS), path=f"{TITLE}v1/index.m3u8", source="cookie")
    manifest, text = written(writer, access, LIVE)
    assert "https://cdn.test/v/title-9000/v1/seg_000.ts\n" in text  # the cookie carries the credential
    cookies = writer.cookies(access, manifest)
    assert cookies and cookies[0].startswith("CTA-Common-Access-Token=")
    assert not any(c.startswith("CTA-Common-Access-Token=") for c in writer.cookies(access, None))


# --- dialect edge -------------------------------------------------------------------------------------------------


def edge_writer(name: str, table: Mapping[str, Any]) -> tuple[DialectEdgeWriter, Route]:
    route = Route(mount="/vod/", origin="http://origin.test/vod/", edge=name)
    writer = writer_for(
        route, Settings(keys=KEYS, routes=(route,), dialects={name: load_dialect(name, table, base_dir=Path())}), MINTER
    )
    assert isinstance(writer, DialectEdgeWriter)
    return writer, route


def test_a_query_credential_rides_on_every_uri_byte_for_byte_and_xml_escaped_in_an_mpd() -> None:
    writer, route = edge_writer("akamai", {"key": "aabbccddeeff00112233445566778899", "token_type": "acl"})
    credential = "hdnts=exp=1~acl=/vod/title-9000/*~hmac=ab&x=1"
    edge = EdgeCarry(Carry.QUERY, None, "http://gw.test/vod/title-9000/v1/index.m3u8")
    access = access_for(route, SESSION, credential, path=f"{TITLE}v1/index.m3u8", edge=edge)
    _, text = written(writer, access, VOD)
    assert f"seg_000.ts?{credential}\n" in text and f'k.key?{credential}"' in text
    mpd = access_for(route, SESSION, credential, path=f"{TITLE}manifest.mpd", edge=edge)
    _, xml = written(writer, mpd, MPD)
    assert f'media="v/$Number$.m4s?{credential.replace("&", "&amp;")}"' in xml
    assert writer.variant(access) == "edge:akamai:query:" and writer.cookies(access, None) == []


def test_an_inherited_credential_needs_nothing_written() -> None:
    writer, route = edge_writer("akamai", {"key": "aabbccddeeff00112233445566778899", "token_type": "acl"})
    access = access_for(route, SESSION, "", path=f"{TITLE}v1/index.m3u8", edge=EdgeCarry(Carry.INHERIT, None, ""))
    _, text = written(writer, access, VOD)
    assert text == VOD.decode() and writer.variant(access) == "edge:akamai:inherit:"


def test_a_per_url_dialect_signs_each_uri_for_the_grant() -> None:
    table = {"secret": "s3cret", "expression": "{expires}{uri} {secret}"}
    writer, route = edge_writer("nginx_secure_link", table)
    nginx = load_dialect("nginx_secure_link", table, base_dir=Path())
    grant = Grant((TITLE,), NOW + 300)
    url = "http://gw.test/vod/title-9000/v1/index.m3u8"
    access = access_for(
        route, grant, "md5=x&expires=1", path=f"{TITLE}v1/index.m3u8", edge=EdgeCarry(Carry.PER_URL, None, url)
    )
    _, text = written(writer, access, VOD)
    segment = next(line for line in text.splitlines() if line.startswith("seg_000.ts?"))
    query = parse_qs(urlsplit(segment).query)
    assert query["expires"] == [str(NOW + 300)]  # the incoming credential's expiry, never longer
    assert nginx.verify(EdgeRequest(f"http://gw.test/vod/title-9000/v1/{segment}"), now=NOW).expires_at == NOW + 300
