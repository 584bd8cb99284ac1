"""Paths that need escaping (space, '%', '+', '~', '!', '&', ',', "'", non-ASCII), in both directions, for the
dialects that sign paths by the vendor's rules: Akamai EdgeAuth (ACL and URL tokens, escape_early on and off),
CloudFront (custom and canned policy) and nginx `secure_link` (`$uri`).

- gateway-signed: byte-identical to the vendor's reference (`akamai-edgeauth`, botocore), or served 200 by a real
  nginx;
- reference-signed, with the path written in another spelling than the gateway's (Python's `quote`, `%7E`,
  lower-case escapes): accepted by the dialect's `verify` and by an edge route (`[[routes]] edge = ...`) on the
  same request bytes, a tampered one refused as `bad_signature`, an expired one as `expired`, a sibling path
  as `acl` (or `bad_signature` where the path is inside the MAC).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Route, Settings
from gateway.errors import TokenDenied
from gateway.http.app import build_app
from gateway.tokens.dialects import akamai, cloudfront, nginx_secure_link
from gateway.tokens.dialects.base import Dialect, EdgeRequest
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.dialects.support.google_signed import b64url
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from tests.support.clock import FakeClock
from tests.tokens.dialects.dialect_helpers import NOW, RSA_PEM, prefixes
from tests.tokens.dialects.test_akamai import KEY, reference_tokens
from tests.tokens.dialects.test_cloudfront import botocore_signer, utc
from tests.tokens.dialects.test_nginx_secure_link import get

GW = "http://gw.test"
# Characters that need escaping somewhere (URL, query, cookie, the token's own syntax), and plain ones.
_HARD = "abcXYZ019-_. %+~!&,'()=@$:é€日"
hard_segments = st.text(alphabet=_HARD, min_size=1, max_size=8).filter(
    # what a path segment may be (see gateway/tokens/acl.py): no dot-only segment, no trailing '.' or ' ',
    # no escape left after decoding (double encoding)
    lambda s: s.strip(".") != "" and not s.endswith((".", " ")) and not re.search(r"%[0-9A-Fa-f]{2}", s)
)
FILES = st.sampled_from(["index.m3u8", "seg 1.ts", "é~+%.m4s", "a!b&c.ts"])


def python_quote(path: str) -> str:
    """How a signer using Python's `quote` spells a path: more escapes than the gateway's canonical form."""
    return quote(path, safe="/")


def odd_spelling(path: str) -> str:
    """Another spelling of the same path, as some clients send it: lower-case escapes, '~' as '%7E'."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), python_quote(path)).replace("~", "%7E")


PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg%201.ts\n#EXT-X-ENDLIST\n"


async def _any_file(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """An origin that has every file (a one-segment playlist for every .m3u8)."""
    playlist = scope["path"].endswith(".m3u8")
    kind = b"application/vnd.apple.mpegurl" if playlist else b"video/mp2t"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": PLAYLIST if playlist else b"segment"})


@asynccontextmanager
async def edge_route(name: str, dialect: Dialect, now: float) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose one route (`/`) is `name`'s edge in front of an origin that has every file."""
    settings_ = Settings(
        keys=KeyRing((HmacKey("k1", b"\x01" * 32),)),
        routes=(Route(mount="/", origin="http://origin.test/", edge=name),),
        dialects={name: dialect},
    )
    app = build_app(settings_, clock=FakeClock(now), origin_transport=httpx.ASGITransport(app=_any_file))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GW) as client:
        yield client


async def edge_verdict(client: httpx.AsyncClient, url: str, **kwargs: Any) -> str:
    """'ok' or the typed denial the edge route answered with."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    response = await client.get(httpx.URL(GW, raw_path=target.encode()), **kwargs)
    return "ok" if response.status_code == 200 else str(response.json()["error"])


def verdict(dialect: Dialect, request: EdgeRequest, now: float) -> str:
    try:
        dialect.verify(request, now=now)
    except TokenDenied as denied:
        return denied.reason.value
    return "ok"


def tamper_hex(token: str) -> str:
    head, _, mac = token.rpartition("hmac=")
    return f"{head}hmac={'1' if mac[0] == '0' else '0'}{mac[1:]}"


# -- Akamai EdgeAuth ----------------------------------------------------------------------------------


def make_akamai(**table: Any) -> akamai.Akamai:
    return akamai.from_config({"key": KEY, "token_name": "hdnts", **table}, base_dir=Path())


async def test_akamai_acl_tokens_for_escaped_paths_both_directions() -> None:
    dialect = make_akamai()
    cases: list[dict[str, Any]] = []
    checks: list[tuple[str, Grant, str]] = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(prefix=prefixes(hard_segments, 3), name=FILES)
    def collect(prefix: str, name: str) -> None:
        grant = Grant((prefix,), NOW + 600, NOW - 60)
        token = dialect.sign(grant).token or ""
        acl = token.split("~acl=")[1].split("~")[0]
        # The ACL is the path a request carries, percent-encoded, with nothing raw that ends a query
        # parameter, a cookie value or a token field.
        assert re.fullmatch(r"[A-Za-z0-9/._:@=$()+%-]+\*", acl) and acl.endswith("/*"), acl
        cases.append({"key": KEY, "start": NOW - 60, "end": NOW + 600, "acl": acl})  # the reference's own
        # What a signer with Python's quote writes ('~' and '!' are the token's delimiters: escaped too).
        theirs = python_quote(prefix).replace("~", "%7E").replace("!", "%21") + "*"
        cases.append({"key": KEY, "start": NOW - 60, "end": NOW + 600, "acl": theirs})
        cases.append({"key": KEY, "start": NOW - 900, "end": NOW - 60, "acl": theirs})  # expired
        checks.append((token, grant, name))

    collect()
    references = reference_tokens(cases)
    async with edge_route("akamai", dialect, NOW) as client:
        for index, (ours, grant, name) in enumerate(checks):
            reference_ours, reference, expired = references[3 * index : 3 * index + 3]
            assert ours == reference_ours  # byte for byte
            prefix = grant.path_prefixes[0]
            for token, spelling, expected in (
                (ours, python_quote, "ok"),
                (reference, odd_spelling, "ok"),
                (tamper_hex(reference), python_quote, "bad_signature"),
                (expired, python_quote, "expired"),
            ):
                url = GW + spelling(prefix + name) + "?hdnts=" + token
                assert verdict(dialect, EdgeRequest(url), NOW) == expected, (url, expected)
                assert await edge_verdict(client, url) == expected, (url, expected)
            verified = dialect.verify(EdgeRequest(GW + odd_spelling(prefix + name) + "?hdnts=" + reference), now=NOW)
            assert verified.path_prefixes == (prefix,)
            sibling = GW + python_quote(prefix[:-1] + "x/" + name) + "?hdnts=" + reference
            assert verdict(dialect, EdgeRequest(sibling), NOW) == "acl"
            assert await edge_verdict(client, sibling) == "acl"


@pytest.mark.parametrize("escape_early", [False, True])
def test_akamai_url_tokens_for_escaped_paths_match_the_reference(escape_early: bool) -> None:
    dialect = make_akamai(token_type="url", escape_early=escape_early, delivery="header")
    cases: list[dict[str, Any]] = []
    checks: list[tuple[str, str, str]] = []

    @settings(max_examples=40, deadline=None, database=None)
    @given(prefix=prefixes(hard_segments, 2), name=FILES)
    def collect(prefix: str, name: str) -> None:
        grant = Grant((prefix,), NOW + 600)
        canonical = encoded_prefix(prefix) + quote(name, safe="~!&,'+")
        ours = dialect.sign(grant, url=GW + canonical).token or ""
        common = {"key": KEY, "end": NOW + 600, "escape_early": escape_early}
        cases.extend([{**common, "url": canonical}, {**common, "url": odd_spelling(prefix + name)}])
        checks.append((ours, canonical, odd_spelling(prefix + name)))

    collect()
    references = reference_tokens(cases)
    for index, (ours, canonical, odd) in enumerate(checks):
        assert ours == references[2 * index]  # byte for byte: the edge signs the path as the request carries it
        for token, path in ((ours, canonical), (references[2 * index + 1], odd)):
            request = EdgeRequest(GW + path, headers={"hdnts": token})
            assert verdict(dialect, request, NOW) == "ok"
            assert verdict(dialect, request, NOW + 601) == "expired"
            assert verdict(dialect, EdgeRequest(GW + path + "x", headers={"hdnts": token}), NOW) == "bad_signature"


# -- CloudFront ---------------------------------------------------------------------------------------


def make_cloudfront(**table: Any) -> cloudfront.CloudFront:
    keys = [{"id": "K2JCJMDEHXQW5F", "private_key": RSA_PEM.read_text()}]
    return cloudfront.from_config({"base_url": GW, "keys": keys, **table}, base_dir=Path())


async def test_cloudfront_resources_for_escaped_paths_both_directions() -> None:
    custom, canned = make_cloudfront(), make_cloudfront(policy="canned")
    signer = botocore_signer(RSA_PEM.read_text())
    checks: list[tuple[str, Grant]] = []

    @settings(max_examples=40, deadline=None, database=None)
    @given(prefix=prefixes(hard_segments, 3), name=FILES)
    def collect(prefix: str, name: str) -> None:
        checks.append((name, Grant((prefix,), NOW + 600, NOW - 60)))

    collect()
    async with edge_route("cloudfront", custom, NOW) as client:
        for name, grant in checks:
            prefix = grant.path_prefixes[0]
            canonical = GW + encoded_prefix(prefix) + quote(name, safe="~!&,'+")
            ours = custom.sign(grant, url=canonical).url or ""
            policy = signer.build_policy(
                GW + encoded_prefix(prefix) + "*", utc(NOW + 600), date_greater_than=utc(NOW - 60)
            )
            assert ours == signer.generate_presigned_url(canonical, policy=policy)  # byte for byte
            # botocore with a resource in Python's spelling, requested in that spelling
            theirs_url = GW + python_quote(prefix + name)
            theirs = signer.generate_presigned_url(
                theirs_url, policy=signer.build_policy(GW + python_quote(prefix) + "*", utc(NOW + 600))
            )
            canned_theirs = signer.generate_presigned_url(theirs_url, date_less_than=utc(NOW + 600))
            for url, expected, now in (
                (ours, "ok", NOW),
                (theirs, "ok", NOW),
                (canned_theirs, "ok", NOW),
                (theirs, "expired", NOW + 600),
                (theirs.replace("Signature=", "Signature=A", 1), "malformed", NOW),
            ):
                dialects = (custom, canned) if url is canned_theirs else (custom,)
                for dialect in dialects:
                    assert verdict(dialect, EdgeRequest(url), now) == expected, (url, expected)
                if now == NOW:
                    assert await edge_verdict(client, url) == expected, (url, expected)
            tampered = theirs.replace(python_quote(prefix), python_quote(prefix[:-1] + "x/"), 1)
            assert verdict(custom, EdgeRequest(tampered), NOW) == "acl"
            assert verdict(canned, EdgeRequest(tampered.replace("Policy=", "Expires=")), NOW) != "ok"


# -- nginx secure_link ($uri: the decoded, normalised path) ---------------------------------------------


def nginx_md5(expires: int, uri: str) -> str:
    """`secure_link_md5 "$secure_link_expires$uri uri-secret"` (the /u/ location of the `nginx`
    fixture) computed as nginx documents it."""
    return b64url(hashlib.md5(f"{expires}{uri} uri-secret".encode(), usedforsecurity=False).digest(), padded=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=prefixes(hard_segments, 2), name=FILES)
def test_nginx_uri_links_for_escaped_paths_both_directions(nginx: str, prefix: str, name: str) -> None:
    dialect = nginx_secure_link.from_config({"secret": "uri-secret"}, base_dir=Path())
    now = int(time.time())
    uri = "/u" + prefix + name  # nginx's $uri: decoded
    ours = dialect.sign(Grant(("/u" + prefix,), now + 600), url=nginx + python_quote(uri)).url or ""
    theirs = f"{nginx}{odd_spelling(uri)}?md5={nginx_md5(now + 600, uri)}&expires={now + 600}"
    expired = f"{nginx}{odd_spelling(uri)}?md5={nginx_md5(now - 5, uri)}&expires={now - 5}"
    for url, status, expected in ((ours, 200, "ok"), (theirs, 200, "ok"), (expired, 410, "expired")):
        assert get(nginx, url) == status, url
        assert verdict(dialect, EdgeRequest(url), now) == expected
    other = theirs.replace(odd_spelling(uri), odd_spelling("/u" + prefix + "x" + name), 1)
    assert get(nginx, other) == 403 and verdict(dialect, EdgeRequest(other), now) == "bad_signature"


async def test_nginx_uri_links_for_escaped_paths_at_an_edge_route() -> None:
    dialect = nginx_secure_link.from_config({"secret": "uri-secret"}, base_dir=Path())
    uri = "/u/caf é/100%/a+b~c!/seg 1.ts"
    theirs = f"{GW}{odd_spelling(uri)}?md5={nginx_md5(NOW + 600, uri)}&expires={NOW + 600}"
    ours = dialect.sign(Grant(("/u/caf é/",), NOW + 600), url=GW + python_quote(uri)).url or ""
    async with edge_route("nginx_secure_link", dialect, NOW) as client:
        assert await edge_verdict(client, theirs) == "ok"
        assert await edge_verdict(client, ours) == "ok"
        assert await edge_verdict(client, theirs.replace("seg%201", "seg%202")) == "bad_signature"
    async with edge_route("nginx_secure_link", dialect, NOW + 601) as client:
        assert await edge_verdict(client, theirs) == "expired"
