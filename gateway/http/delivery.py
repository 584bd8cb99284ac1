"""Delivery modes: where a token travels between the gateway and a player.

    query   every URI in a playlist carries `?token=…` (scoped tokens, see tokens/scoped.py)   default
    cookie  a signed cookie (Path = the title prefix); playlists carry no tokens, identical for all viewers
    hybrid  the master URL carries a token, exchanged for the cookie on first use; then as cookie
    path    `/t/<token>/vod/…`: relative URIs inherit the token with no rewriting

The edge accepts a token from any of these places (path, then query, then cookie); the route's mode
decides how playlists are written and whether cookies are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config_schema import SameSite
from gateway.http.request_facts import header, split_token
from gateway.tokens.cookies import Cookie, parse_cookie_header

PATH_TOKEN_PREFIX = b"/t/"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


@dataclass(frozen=True, slots=True)
class FoundToken:
    token: str | None
    source: str | None  # "path" | "query" | "cookie" | None
    raw_path: bytes  # the request path with any `/t/<token>` prefix removed


def find_token(scope: Mapping[str, Any], raw_path: bytes, *, param: str, cookie_name: str) -> FoundToken:
    token, _ = split_token(scope.get("query_string", b""), param)
    if raw_path.startswith(PATH_TOKEN_PREFIX):
        token_segment, slash, rest = raw_path[len(PATH_TOKEN_PREFIX) :].partition(b"/")
        if slash:
            return FoundToken(token_segment.decode("latin-1"), "path", b"/" + rest)
    if token is not None:
        return FoundToken(token, "query", raw_path)
    cookie = cookie_value(scope, cookie_name)
    return FoundToken(cookie, "cookie" if cookie else None, raw_path)


def cookie_value(scope: Mapping[str, Any], name: str) -> str | None:
    raw = header(scope, b"cookie")
    if not raw or name not in raw:
        return None
    return parse_cookie_header(raw).get(name) or None


def is_plain_http_localhost(scope: Mapping[str, Any]) -> bool:
    host_header = header(scope, b"host") or ""
    host = host_header.split("]")[0] + "]" if host_header.startswith("[") else host_header.rsplit(":", 1)[0]
    return scope.get("scheme") == "http" and host in LOCAL_HOSTS


def set_cookie(
    name: str,
    token: str,
    *,
    path: str,
    expires_at: int,
    now: float,
    secure: bool,
    same_site: SameSite,
    partitioned: bool = False,
) -> str:
    """The gateway's own `Set-Cookie` value: HttpOnly always; Max-Age to the token's expiry.

    Secure unless plain-HTTP localhost, and always with `SameSite=None` or `Partitioned`: browsers drop
    either attribute's cookie without it. `Partitioned` (CHIPS) keys the cookie to the top-level site, the
    form browsers that block third-party cookies still accept for a player embedded on another site.
    """
    secure = secure or same_site is SameSite.NONE or partitioned
    cookie = Cookie(
        name, token, path=path, expires_at=expires_at, secure=secure, same_site=same_site.value, partitioned=partitioned
    )
    return cookie.set_cookie(now=now)
