"""What a guard hands the edge: a request turned into an *access*, or a raised `TokenDenied`.

    Incoming  the request as read from the raw ASGI scope (path, the gateway's own token, route), before
              any guard: every route goes through this one reading
    Guard     `admit(incoming) -> Access`: the native token verifier (gateway/http/native_guard.py) or a
              dialect's edge (gateway/http/dialect_edge.py); one per route
    Access    what was granted and what to do with it: the resource, the origin URL (allow-listed query
              only), the credential manifests carry, headers to add, a redirect to answer instead

Nothing here reads Starlette's `Request` accessors: they cost more than a token verify (README "Benchmarks").
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, NamedTuple, Protocol

from gateway.config import Route
from gateway.http.delivery import FoundToken
from gateway.http.links import Carry
from gateway.http.media_types import is_manifest
from gateway.tokens.acl import CheckedPath
from gateway.tokens.grant import Grant

AsgiScope = MutableMapping[str, Any]  # the raw ASGI scope


class Incoming(NamedTuple):
    """A request as the edge reads it, before it is judged.

    NamedTuples, not frozen dataclasses: two are built per request, and a frozen dataclass costs ~1 µs more
    to build (one `object.__setattr__` per field) on the path that serves thousands of playlists a second.
    """

    scope: AsgiScope
    raw_path: bytes  # as the client sent it (a `/t/<token>` prefix included)
    found: FoundToken  # the gateway's own token, and where it was (path, query, cookie)
    path: CheckedPath  # the path without any `/t/<token>`, normalised: the ACL boundary
    route: Route  # the route with the longest mount covering `path`
    now: float


class EdgeCarry(NamedTuple):
    """On a dialect-edge route: how the URIs of a playlist served to this request carry its credential."""

    carry: Carry
    mapped: str | None  # the resource prefix the request's own prefix stands for (see EdgePath.mapped)
    request_url: str  # the playlist's URL as the viewer requested it (per-URL signatures resolve against it)


class Access(NamedTuple):
    """A request a guard let through, and everything the writers and the origin stream need of it."""

    incoming: Incoming
    grant: Grant
    resource: CheckedPath  # the resource in the origin's layout (a dialect may map it from the request path)
    # The origin URL: the resource plus only the allow-listed query (`request_facts.upstream_query`); no token
    # parameter of any token system. It is also the manifest cache key, so junk never splits the cache.
    origin_url: str
    credential: str  # what fills a manifest's token slots (unless the writer mints scoped tokens from it)
    headers: tuple[tuple[str, str], ...] = ()  # to add to the response (a renewal: CAT's catr)
    redirect_status: int | None = None  # answer with this status and `headers` only (a renewal by redirect)
    edge: EdgeCarry | None = None  # set on dialect-edge routes
    # A DASH remote element (xlink:href) opened by the playlist-scoped token the gateway wrote on it: served
    # as a manifest (an MPD fragment, rewritten like one) whatever its path says.
    remote_element: bool = False

    @property
    def route(self) -> Route:
        return self.incoming.route

    @property
    def now(self) -> float:
        return self.incoming.now

    @property
    def head(self) -> bool:
        return bool(self.incoming.scope["method"] == "HEAD")

    @property
    def is_manifest(self) -> bool:
        return self.remote_element or is_manifest(self.resource.decoded)


def origin_url_for(route: Route, resource: CheckedPath, query: str) -> str:
    """Where the origin is asked for `resource`: the route's origin, the checked path, the allow-listed query."""
    return route.origin_url(resource.encoded) + (f"?{query}" if query else "")


class Guard(Protocol):
    """Judges the requests of one route: an `Access`, or `TokenDenied` with a typed reason."""

    def admit(self, incoming: Incoming) -> Access: ...
