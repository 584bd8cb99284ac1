"""The gateway acting as a CDN's edge for a route: it verifies that dialect's tokens itself.

`[[routes]] edge = "<dialect>"` makes every request under the route carry that dialect's token (query,
cookie, header or path, as the dialect is configured) instead of the gateway's own. For every dialect,
with the parts each one declares (`query_params`, `edge_path`, see tokens/dialects/base.py):

- Upstream: the resource path (`edge_path`: a token segment removed, an id-first layout such as Mux's or
  Cloudflare Stream's mapped through the dialect's prefix template) and the query without any of the
  dialect's parameters. No credential reaches the origin or keys the manifest cache.
- Playlists: every URI carries a credential this same edge accepts (`Carry`):
  * QUERY (prefix dialects whose credential came by query: CloudFront custom policy, Akamai ACL, Google
    URL prefix, Media CDN dual token, nginx directory token, Mux, CAT): the request's own credential
    parameters, byte for byte. It already covers the title's prefix; nothing is re-signed, so its
    expiry, IP binding and every other condition stay exactly what the viewer was given, and an edge
    holding only public keys works too.
  * PER_URL (CloudFront canned policy, Akamai URL tokens, Google signed URLs, dual-token FullPath, nginx
    `$uri`): one signature opens one URL, so the gateway signs each URI the playlist lists, for the
    verified grant's constraints and never past its expiry (once per URL and grant, cached).
  * INHERIT (Cloudflare Stream, Media CDN's path component; any credential that came by cookie or
    header): nothing is written. Relative URIs inherit the path credential; cookies and headers travel
    by themselves. URIs the origin wrote root-relative or absolute are made relative when they fall
    under the mapped prefix, so they inherit it as well.
For CTA-5007 CAT the edge also renews (catr): the renewed token goes out under both header names with
CORS exposure, as a cookie, or as a redirect, and playlists served to a query-token player carry it. What a
dialect does as an edge (the credential it presented, a renewal) is its `verify_edge` (the dialect protocol,
tokens/dialects/base.py): nothing here knows one dialect from another.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.config import Route, Settings
from gateway.errors import Denial, TokenDenied
from gateway.http.access import Access, EdgeCarry, Incoming, origin_url_for
from gateway.http.links import Carry
from gateway.http.request_facts import ProxyTrust, client_address, header, split_query, upstream_params, upstream_query
from gateway.tokens.acl import normalise_path
from gateway.tokens.cookies import parse_cookie_header
from gateway.tokens.dialects.base import Dialect, EdgeRequest
from gateway.tokens.grant import Grant, Scope

# What a credential written into a playlist may contain: RFC 3986 query characters without the ones that
# would end a quoted HLS attribute or an XML attribute/text ('"', "'", '<', '>') or start a fragment. A
# credential that verified is made of these; the check keeps a junk parameter next to it out of playlists.
_PLAYLIST_SAFE = re.compile(r"[A-Za-z0-9\-._~!$()*+,;=:@/%?&]*")


def token_query_params(dialect: Dialect) -> frozenset[str]:
    """The query parameter names a configured dialect's tokens travel in (its protocol declares them):
    none of them is ever forwarded to an origin or accepted in a route's `forward_query`."""
    return frozenset(dialect.query_params)


def edge_request(scope: Mapping[str, Any], raw_path: bytes, trust: ProxyTrust) -> EdgeRequest:
    """The request as a CDN edge sees it: absolute URL, cookies, headers, client address."""
    host = header(scope, b"host") or "localhost"
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}" + (f"?{query}" if query else "")
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", ())}
    # Every Cookie header (HTTP/2 may split them); another site's malformed cookie never hides the dialect's.
    sent = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == b"cookie"]
    cookies = parse_cookie_header("; ".join(sent)) if sent else {}
    return EdgeRequest(url, cookies, headers, client_address(scope, trust), str(scope.get("method", "GET")))


class DialectGuard:
    """The guard of a route with `edge = "<dialect>"`: the dialect's own verifier, then the request split into
    the resource the origin is asked for and the credential its playlists carry."""

    def __init__(self, route: Route, dialect: Dialect, settings: Settings) -> None:
        self.route = route
        self.dialect = dialect
        self.trust = settings.proxy_trust
        # What this route sends upstream (the dialect's parameters are gone before this allow-list applies).
        self.forwarded = upstream_params(
            route.forward_query, delta_updates=settings.delta_updates, token_params=settings.token_params
        )

    def admit(self, incoming: Incoming) -> Access:
        dialect = self.dialect
        request = edge_request(incoming.scope, incoming.raw_path, self.trust)
        verdict = dialect.verify_edge(request, now=incoming.now)
        parts = urlsplit(request.url)
        query, _ = split_query(parts.query, dialect.query_params)
        located = dialect.edge_path(normalise_path(parts.path).encoded, verdict.grant)
        credential = verdict.presented
        if not _PLAYLIST_SAFE.fullmatch(credential):
            raise TokenDenied(
                Denial.MALFORMED,
                f"{dialect.name} parameters carry characters a playlist URI cannot: {', '.join(dialect.query_params)}",
            )
        resource = normalise_path(located.resource)
        if not resource.decoded.startswith(self.route.mount):  # the resource must stay under this route
            raise TokenDenied(
                Denial.ACL,
                f"{resource.decoded} is outside the route mounted at {self.route.mount}",
                {"path": resource.decoded},
            )
        carry = Carry.INHERIT if not credential else Carry.QUERY if dialect.prefix_signing else Carry.PER_URL
        return Access(
            incoming,
            verdict.grant,
            resource,
            origin_url_for(self.route, resource, upstream_query(query, self.forwarded)),
            credential,
            verdict.headers,
            verdict.redirect_status,
            EdgeCarry(carry, located.mapped, request.url),
        )


def per_url_grant(grant: Grant, mount: str) -> Grant:
    """What a per-URL credential lets the edge sign for the URIs of the playlist it opened.

    A per-URL dialect's verified grant names the one URL it was for (see cdn_request.grant_prefixes), so
    nothing could be signed from it. The playlist it opened lists what the viewer may load next, as a
    master URL signed for Mux or Akamai SMP opens its renditions: the edge signs exactly the URIs that
    playlist lists, on this route, with the grant's expiry, start, client network and ids, never more.
    """
    return dataclasses.replace(grant, path_prefixes=(mount,), scope=Scope.ALL, key_id=None)
