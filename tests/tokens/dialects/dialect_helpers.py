"""Helpers shared by the CDN dialect tests: key files, vector files, Grant strategies, request builders."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from hypothesis import strategies as st

from gateway.tokens.dialects.base import Credentials, EdgeRequest
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant
from tests.support.paths import FIXTURES as FIXTURES_ROOT

FIXTURES = FIXTURES_ROOT / "dialects"
RSA_PEM = FIXTURES / "keys" / "appendix-a-rsa2048.pem"
EC_PEM = FIXTURES / "keys" / "appendix-a-ec-p256.pem"
NOW = 1_767_200_000  # a fixed "now" for every test: the clock is always passed in
HOST = "https://cdn.example.com"


def load_vectors(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# -- Grant strategies ---------------------------------------------------------------------------------

_PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
plain_segments = st.text(alphabet=_PLAIN + ".", min_size=1, max_size=12).filter(
    lambda s: s.strip(".") != "" and not s.endswith(".")
)
# Characters a path may carry that need percent-encoding or are sub-delims: the encoding must round-trip.
rich_segments = st.text(alphabet=_PLAIN + " é(@'=&+$:", min_size=1, max_size=10).filter(
    lambda s: not s.endswith(" ") and s.strip(".") != ""
)


def prefixes(segments: st.SearchStrategy[str] = plain_segments, max_depth: int = 3) -> st.SearchStrategy[str]:
    return st.lists(segments, min_size=1, max_size=max_depth).map(lambda parts: "/" + "/".join(parts) + "/")


def networks(version: int | None = 4) -> st.SearchStrategy[Any]:
    v4 = st.builds(
        lambda a, n: ipaddress.ip_network((a, n), strict=False),
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
        st.integers(8, 32),
    )
    v6 = st.builds(
        lambda a, n: ipaddress.ip_network((a, n), strict=False),
        st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
        st.integers(16, 128),
    )
    return v4 if version == 4 else v6 if version == 6 else st.one_of(v4, v6)


ids = st.text(alphabet=_PLAIN + ".:", min_size=1, max_size=24)


@st.composite
def grants(
    draw: st.DrawFn,
    *,
    segments: st.SearchStrategy[str] = plain_segments,
    max_prefixes: int = 1,
    network: st.SearchStrategy[Any] | None = None,
    not_before: bool = True,
    with_ids: bool = False,
) -> Grant:
    expires_at = draw(st.integers(NOW + 60, NOW + 86_400 * 30))
    start = draw(st.none() | st.integers(NOW - 86_400, NOW - 1)) if not_before else None
    return Grant(
        path_prefixes=tuple(draw(st.lists(prefixes(segments), min_size=1, max_size=max_prefixes, unique=True))),
        expires_at=expires_at,
        not_before=start,
        client_network=draw(st.none() | network) if network is not None else None,
        session_id=draw(st.none() | ids) if with_ids else None,
        user_id=draw(st.none() | ids) if with_ids else None,
    )


# -- building the request an edge would see -----------------------------------------------------------


def file_url(grant: Grant, name: str = "seg-1.ts", host: str = HOST) -> str:
    return host + encoded_prefix(grant.path_prefixes[0]) + name


def edge_request(creds: Credentials, url: str, **extra: Any) -> EdgeRequest:
    """The request a player makes with these credentials for `url` (the signed URL when there is one)."""
    target = creds.url or url
    if creds.url is None and creds.query:
        target = url + ("&" if "?" in url else "?") + creds.query_string()
    cookies = {cookie.name: cookie.value for cookie in creds.cookies}
    return EdgeRequest(url=target, cookies=cookies, headers=dict(creds.headers), **extra)


def with_path(url: str, new_path: str) -> str:
    """Swap the path of `url`, keeping scheme, host and query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{new_path}" + (f"?{parts.query}" if parts.query else "")
