"""The gateway acting as a CDN's edge for a route: it verifies that dialect's tokens itself.

`[[routes]] edge = "<dialect>"` makes every request under the route carry that dialect's token (query,
cookie or header, as the dialect is configured) instead of the gateway's own. For CTA-5007 CAT the
edge also renews (catr): the renewed token goes out under both header names with CORS exposure, as a
cookie, or as a redirect, and playlists served to a query-token player carry the renewed token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.grant import Grant
from gateway.request_facts import ProxyTrust, client_address, header
from gateway.tokens.dialects import cloudfront, google_signed, mux
from gateway.tokens.dialects.base import Dialect, EdgeRequest
from gateway.tokens.dialects.cat import CatDialect

# The query parameters that carry each dialect's token (registry name -> names for a configured dialect):
# none of them is ever forwarded to an origin or accepted in a route's `forward_query`.
TOKEN_QUERY_PARAMS: dict[str, Callable[[Any], Iterable[str]]] = {
    "cloudfront": lambda _: cloudfront.QUERY_PARAMS,
    "akamai": lambda dialect: (dialect.token_name,),
    "cloud_cdn": lambda _: google_signed.SIGNED_PARAMS,
    "media_cdn": lambda _: google_signed.SIGNED_PARAMS,
    "media_cdn_dualtoken": lambda dialect: (dialect.token_name,),
    "cloudflare_stream": lambda _: (),  # the token is a path segment
    "mux": lambda _: (mux.QUERY_PARAM,),
    "nginx_secure_link": lambda dialect: (dialect.hash_param, dialect.expires_param),
    "cat": lambda dialect: dialect.query_params,
}


def token_query_params(dialect: Dialect) -> frozenset[str]:
    """The query parameter names a configured dialect's tokens travel in."""
    names = TOKEN_QUERY_PARAMS.get(dialect.name)
    return frozenset(names(dialect) if names is not None else getattr(dialect, "query_params", ()))


@dataclass(frozen=True, slots=True)
class EdgeDecision:
    """What a dialect edge decided for one request."""

    grant: Grant
    query_param: str | None  # where the token came in the query (playlists then carry it), else None
    token: str | None  # the token playlists should carry (the renewed one when renewal happened)
    headers: tuple[tuple[str, str], ...] = ()  # renewal headers for the response
    redirect_status: int | None = None  # catr redirect: answer with this status and headers only


def edge_request(scope: Mapping[str, Any], raw_path: bytes, trust: ProxyTrust) -> EdgeRequest:
    """The request as a CDN edge sees it: absolute URL, cookies, headers, client address."""
    host = header(scope, b"host") or "localhost"
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}" + (f"?{query}" if query else "")
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", ())}
    cookies: dict[str, str] = {}
    if "cookie" in headers:
        jar: SimpleCookie = SimpleCookie()
        with contextlib.suppress(CookieError):  # a malformed Cookie header carries no token: `missing`
            jar.load(headers["cookie"])
        cookies = {name: morsel.value for name, morsel in jar.items()}
    return EdgeRequest(url, cookies, headers, client_address(scope, trust), str(scope.get("method", "GET")))


def decide(dialect: Dialect, request: EdgeRequest, *, now: float) -> EdgeDecision:
    """Verify (raises TokenDenied) and, for CAT, renew when its catr says so."""
    if not isinstance(dialect, CatDialect):
        return EdgeDecision(dialect.verify(request, now=now), None, None)
    verified = dialect.verify_token(request, now=now)
    param, token = _presented_query_token(dialect, request) if verified.channel == "query" else (None, None)
    renewal = dialect.renew(verified, now=now)
    if renewal is None:
        return EdgeDecision(verified.grant, param, token)
    redirect = renewal.status if renewal.delivered_by == "redirect" else None
    return EdgeDecision(verified.grant, param, renewal.token, renewal.headers, redirect)


def _presented_query_token(dialect: CatDialect, request: EdgeRequest) -> tuple[str | None, str | None]:
    query = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    for param in dialect.query_params:
        if param in query:
            return param, query[param]
    return None, None
