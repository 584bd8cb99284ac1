"""NGINX secure_link: a real Debian nginx on 127.0.0.1 serves our links (200), refuses tampered ones (403)
and expired ones (410); our verifier reaches the same verdicts. In CI a missing nginx fails, never skips."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects import nginx_secure_link
from gateway.tokens.dialects.base import EdgeRequest, SigningOptions
from gateway.tokens.dialects.support.cdn_request import UnsupportedGrant, encoded_prefix
from gateway.tokens.dialects.support.google_signed import b64url
from gateway.tokens.grant import Grant
from tests.support.servers import raw_http_get
from tests.tokens.dialects.dialect_helpers import load_vectors, plain_segments, prefixes, rich_segments

LOCAL = ipaddress.ip_address("127.0.0.1")
DIALECTS = {
    "/u": nginx_secure_link.from_config({"secret": "uri-secret"}, base_dir=Path()),
    "/ip": nginx_secure_link.from_config(
        {"secret": "ip-secret", "expression": "{expires}{uri}{remote_addr} {secret}"}, base_dir=Path()
    ),
    "/d": nginx_secure_link.from_config(
        {"secret": "dir-secret", "expression": "{expires}{prefix} {secret}", "padded": True}, base_dir=Path()
    ),
}


def get(base: str, url: str) -> int:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return raw_http_get(base, target.encode())[0]


def verdict(dialect: nginx_secure_link.NginxSecureLink, url: str, now: float, client: Any = LOCAL) -> Denial | None:
    try:
        dialect.verify(EdgeRequest(url, client_ip=client), now=now)
    except TokenDenied as exc:
        return exc.reason
    return None


def tamper(url: str) -> str:
    head, _, rest = url.partition("md5=")
    return head + "md5=" + ("B" if rest[0] == "A" else "A") + rest[1:]


def test_dialects_md_vector() -> None:
    vector = load_vectors("nginx_vectors.json")
    dialect = nginx_secure_link.from_config(
        {"secret": vector["secret"], "expression": vector["expression"]}, base_dir=Path()
    )
    digest = dialect.digest(expires=str(vector["expires"]), path=vector["path"], remote_addr=vector["remote_addr"])
    assert b64url(digest, padded=False) == vector["expected_md5"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=prefixes(rich_segments, 2), name=st.sampled_from(["index.m3u8", "seg 1.ts", "é.m4s"]))
def test_uri_links_200_tampered_403_expired_410(nginx: str, prefix: str, name: str) -> None:
    dialect, now = DIALECTS["/u"], time.time()
    grant = Grant(("/u" + prefix,), int(now) + 3600)
    url = nginx + encoded_prefix(grant.path_prefixes[0]) + encoded_prefix("/" + name + "/")[1:-1]
    signed = dialect.sign(grant, url=url).url
    assert signed is not None
    assert (get(nginx, signed), verdict(dialect, signed, now)) == (200, None)
    assert get(nginx, tamper(signed)) == 403 and verdict(dialect, tamper(signed), now) is Denial.BAD_SIGNATURE
    other = signed.replace(encoded_prefix(grant.path_prefixes[0]), encoded_prefix(grant.path_prefixes[0]) + "x/", 1)
    assert get(nginx, other) == 403 and verdict(dialect, other, now) is Denial.BAD_SIGNATURE
    expired = dialect.sign(Grant(grant.path_prefixes, int(now) - 5), url=url).url
    assert expired is not None
    assert get(nginx, expired) == 410 and verdict(dialect, expired, now) is Denial.EXPIRED


def test_remote_addr_links_bind_the_client(nginx: str) -> None:
    dialect, now = DIALECTS["/ip"], time.time()
    url = nginx + "/ip/vod/a.ts"
    for client, status in (("127.0.0.1", 200), ("127.0.0.2", 403)):
        grant = Grant(("/ip/vod/",), int(now) + 60, client_network=ipaddress.ip_network(client))
        signed = dialect.sign(grant, url=url).url
        assert signed is not None and get(nginx, signed) == status
        assert verdict(dialect, signed, now) is (None if status == 200 else Denial.BAD_SIGNATURE)
    with pytest.raises(UnsupportedGrant, match="remote_addr"):
        dialect.sign(Grant(("/ip/vod/",), int(now) + 60), url=url)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=plain_segments, rest=st.sampled_from(["index.m3u8", "720p/seg-9.ts", "a/b/c.m4s"]))
def test_directory_token_opens_everything_under_the_prefix(nginx: str, segment: str, rest: str) -> None:
    dialect, now = DIALECTS["/d"], time.time()
    grant = Grant((f"/d/{segment}/",), int(now) + 60)
    creds = dialect.sign(grant)
    assert creds.token is not None and creds.token.endswith("==")  # padded: nginx accepts both
    query = creds.query_string()
    url = f"{nginx}/d/{segment}/{rest}?{query}"
    assert get(nginx, url) == 200
    assert dialect.verify(EdgeRequest(url), now=now) == grant
    sibling = f"{nginx}/d/{segment}x/{rest}?{query}"
    assert get(nginx, sibling) == 403 and verdict(dialect, sibling, now) is Denial.BAD_SIGNATURE


def test_verify_refuses_traversal_and_missing_parts() -> None:
    dialect = DIALECTS["/u"]
    signed = dialect.sign(Grant(("/u/vod/",), 2_000_000_000), url="http://h/u/vod/a.ts").url
    assert signed is not None
    assert verdict(dialect, signed.replace("/u/vod/a.ts", "/u/vod/../x/a.ts"), 0) is Denial.ACL
    assert verdict(dialect, "http://h/u/vod/a.ts", 0) is Denial.MISSING
    assert verdict(dialect, signed.replace("&expires=2000000000", ""), 0) is Denial.MALFORMED
    assert verdict(dialect, signed + "&md5=AAAA", 0) is Denial.MALFORMED


def test_options_nginx_cannot_express_are_refused() -> None:
    # secure_link_md5 has no wildcard, no method, no header and no start time of its own.
    grant, url = Grant(("/u/vod/",), 2_000_000_000), "http://h/u/vod/a.ts"
    for options, message in (
        (SigningOptions(resources=("/u/*",)), "resources"),
        (SigningOptions(method="GET"), "method"),
        (SigningOptions(headers=(("X-A", "1"),)), "headers"),
    ):
        with pytest.raises(UnsupportedGrant, match=message):
            DIALECTS["/u"].sign(grant, url=url, options=options)
    with pytest.raises(UnsupportedGrant, match="start time"):
        DIALECTS["/u"].sign(Grant(("/u/vod/",), 2_000_000_000, 1_900_000_000), url=url)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"secret": "s", "expression": "{expires}{uri}"}, "expression"),
        ({"secret": "s", "expression": "{expires}{uri}{prefix} {secret}"}, "exactly one of"),
        ({"secret": "s", "expression": "{expires}{host} {secret}"}, "unknown placeholder"),
        ({"secret": "s{x}"}, "secret: must not contain"),
        ({"secret": "s", "hash_param": "a-b"}, "hash_param"),
        ({"secret_file": "no/such/file"}, "secret_file: cannot read"),
    ],
)
def test_config_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        nginx_secure_link.from_config(table, base_dir=Path("/nonexistent"))
    assert str(caught.value).startswith("[dialects.nginx_secure_link]")
