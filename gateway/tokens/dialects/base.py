"""The anatomy every CDN dialect shares: what a signer returns, what an edge verifier reads.

A dialect module exposes `NAME`, a frozen settings/dialect object built by `from_config(table, *, base_dir,
environ)`, whose `sign(grant, *, url=None, options=NO_OPTIONS) -> Credentials` and (where the gateway can act as
the edge) `verify(request, *, now) -> Grant` follow the `Dialect` protocol below. Where the gateway is the edge it
also needs to know which parts of a request are the dialect's credential, so they never reach the origin
or a cache key: `query_params` (every query parameter the dialect reads) and `edge_path(raw_path, grant)`
(the resource a verified request names once a token or id carried in the path is taken out). Everything else
an edge or the app needs of a dialect is part of the protocol too, so the rim never probes for it:
`verify_edge` (the verdict with the credential playlists carry and any renewal, CAT's catr) and `jwks` (public
keys to publish). `DialectDefaults` gives both their plain form. Modules never import starlette or httpx and
never read the clock: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from gateway.errors import UnsupportedGrant
from gateway.tokens.cookies import Cookie as Cookie  # re-exported: a dialect's cookie, checked when made
from gateway.tokens.grant import Grant, IPAddress


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one signature hands out. The app and rewriter decide where each part is written.

    query:      parameters to append to each URL, in order, values NOT yet percent-encoded
    cookies:    cookies to set (cookie delivery)
    headers:    request headers a player must send (header delivery)
    path_token: a path segment carrying the token (Cloudflare Stream's video-id slot, Media CDN path tokens)
    url:        for per-URL dialects, the complete signed URL
    token:      the bare token string, when the dialect has one (what the CLI prints last)
    query_ready: the query values are already what the CDN must receive byte for byte (a token whose signed text
                carries its own percent-escapes, as Media CDN's dual token and Akamai's escaped ACL do): written
                as they are; the dialect guarantees they are query characters
    """

    query: tuple[tuple[str, str], ...] = ()
    cookies: tuple[Cookie, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    path_token: str | None = None
    url: str | None = None
    token: str | None = None
    query_ready: bool = False

    def query_string(self) -> str:
        """`a=b&c=d`, percent-encoding only what a query value cannot carry (dialect alphabets pass as is)."""
        if self.query_ready:
            return "&".join(f"{name}={value}" for name, value in self.query)
        return "&".join(f"{name}={quote(value, safe='-_.~!*=:/,+')}" for name, value in self.query)


@dataclass(frozen=True, slots=True)
class SigningOptions:
    """What a vendor's own SDK lets a signer choose beyond the grant (the grant already carries the start
    time as `not_before`, the session id and the client network).

    resources: custom ACL/resource patterns in the dialect's own wildcard syntax (Akamai `*` and `?`, several
               entries; CloudFront `*`), signed instead of the grant's path prefixes
    method:    the HTTP method the token is bound to (CAT `catm`)
    headers:   client request headers the token is bound to, as (name, value) (dual token `Headers=`)

    A dialect that cannot express an option it is given refuses it (`refuse_unsupported`), never drops it.
    """

    resources: tuple[str, ...] = ()
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def refuse_unsupported(self, dialect: str, *, supported: frozenset[str] = frozenset()) -> None:
        """Raise UnsupportedGrant naming each option set here that `dialect` does not support."""
        given = {name for name in ("resources", "method", "headers") if getattr(self, name)}
        if unsupported := sorted(given - supported):
            raise UnsupportedGrant(f"{dialect}: cannot sign {', '.join(unsupported)}")


NO_OPTIONS = SigningOptions()


@dataclass(frozen=True, slots=True)
class EdgeRequest:
    """What an edge sees of a request: the absolute URL (with query), cookies, headers, the client address."""

    url: str
    cookies: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: IPAddress | None = None
    method: str = "GET"


@dataclass(frozen=True, slots=True)
class EdgePath:
    """Where a verified edge request points, in the gateway's (origin's) path layout.

    resource: the raw (percent-encoded) path of the resource: the request path without any credential
              segment, with an id-first CDN layout mapped through the dialect's prefix template. This is
              what the origin is asked for and what keys the manifest cache.
    mapped:   set when the request path differs from `resource` by its prefix (a token in the path, as
              Cloudflare Stream and Media CDN's path component do, or Mux's id-first URLs): the resource
              prefix the request's own prefix stands for. References below it must stay relative in a
              playlist, so that they inherit the request's prefix (and with it the credential).
    """

    resource: str
    mapped: str | None = None


Jwks = dict[str, list[dict[str, str]]]  # {"keys": [JWK, …]}, public parts only


@dataclass(frozen=True, slots=True)
class EdgeVerdict:
    """What a dialect's edge decided for a request it accepted.

    presented:       the credential's query pairs as the request carried them (raw, in order), which every
                     URI of a playlist served to it carries; "" when the credential came by header, cookie or
                     path (then nothing needs writing). A renewed credential replaces the presented one.
    headers:         response headers to add (a renewal: CAT's catr headers or Set-Cookie)
    redirect_status: answer with this status and `headers` only (a renewal by redirect)
    """

    grant: Grant
    presented: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    redirect_status: int | None = None


def presented_query(url: str, names: tuple[str, ...]) -> str:
    """The pairs of `url`'s query whose name is one of `names`, raw and in order, joined by '&'."""
    query = url.partition("?")[2].partition("#")[0]
    if not query or not names:
        return ""
    return "&".join(pair for pair in query.split("&") if pair and pair.partition("=")[0] in names)


class Dialect(Protocol):
    """One CDN's token format, bound to its settings and keys."""

    @property
    def name(self) -> str: ...

    @property
    def prefix_signing(self) -> bool:
        """True: one signature covers a prefix/ACL (sign once per session); False: one per URL."""
        ...

    def sign(self, grant: Grant, *, url: str | None = None, options: SigningOptions = NO_OPTIONS) -> Credentials:
        """Credentials for `grant` (and `url`, for per-URL forms), honouring every option or refusing it."""
        ...

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        """Raise TokenDenied (typed reason, values) or return what the token grants.

        Dialects the gateway cannot check as an edge raise NotImplementedError.
        """
        ...

    @property
    def query_params(self) -> tuple[str, ...]:
        """Every query parameter `verify` may read, in the names this configuration uses.

        Where the gateway is the edge, none of them is forwarded to the origin or keys a cache, and a
        credential that came by query is these parameters as the request carried them.
        """
        ...

    def edge_path(self, raw_path: str, grant: Grant) -> EdgePath:
        """The resource a request this dialect verified (as `grant`) names; see `EdgePath`.

        `raw_path` is the request path in the canonical encoding the gateway forwards
        (`gateway.tokens.acl.normalise_path(...).encoded`), for a request `verify` accepted.
        """
        ...

    def verify_edge(self, request: EdgeRequest, *, now: float) -> EdgeVerdict:
        """`verify` as the gateway's edge needs it: the grant, the credential playlists carry, any renewal.

        Raises TokenDenied like `verify`.
        """
        ...

    def jwks(self) -> Jwks:
        """The public keys a verifier of this dialect's tokens needs; never a secret (HMAC keys stay out)."""
        ...


class DialectDefaults:
    """The plain form of the abilities most dialects have nothing more to say about: no public keys, and as an
    edge the verified grant with the credential parameters the request carried (no renewal)."""

    __slots__ = ()

    def verify_edge(self: Dialect, request: EdgeRequest, *, now: float) -> EdgeVerdict:
        return EdgeVerdict(self.verify(request, now=now), presented_query(request.url, self.query_params))

    def jwks(self) -> Jwks:
        return {"keys": []}


DialectFactory = Any  # Callable[[Mapping[str, Any]], Dialect] with keywords base_dir, environ; kept loose
