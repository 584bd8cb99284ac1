"""The anatomy every CDN dialect shares: what a signer returns, what an edge verifier reads.

A dialect module exposes `NAME`, a frozen settings/dialect object built by `from_config(table, *, base_dir)`,
whose `sign(grant, *, url=None) -> Credentials` and (where the gateway can act as the edge)
`verify(request, *, now) -> Grant` follow the `Dialect` protocol below. Modules never import starlette or
httpx and never read the clock: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from gateway.grant import Grant, IPAddress


@dataclass(frozen=True, slots=True)
class Cookie:
    name: str
    value: str
    path: str = "/"
    domain: str | None = None
    expires_at: int | None = None
    http_only: bool = True
    secure: bool = True
    same_site: str = "Lax"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one signature hands out. The app and rewriter decide where each part is written.

    query:      parameters to append to each URL, in order, values NOT yet percent-encoded
    cookies:    cookies to set (cookie delivery)
    headers:    request headers a player must send (header delivery)
    path_token: a path segment carrying the token (Cloudflare Stream's video-id slot, Media CDN path tokens)
    url:        for per-URL dialects, the complete signed URL
    token:      the bare token string, when the dialect has one (what the CLI prints last)
    """

    query: tuple[tuple[str, str], ...] = ()
    cookies: tuple[Cookie, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    path_token: str | None = None
    url: str | None = None
    token: str | None = None

    def query_string(self) -> str:
        """`a=b&c=d`, percent-encoding only what a query value cannot carry (dialect alphabets pass as is)."""
        return "&".join(f"{name}={quote(value, safe='-_.~!*=:/,+')}" for name, value in self.query)


@dataclass(frozen=True, slots=True)
class EdgeRequest:
    """What an edge sees of a request: the absolute URL (with query), cookies, headers, the client address."""

    url: str
    cookies: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: IPAddress | None = None
    method: str = "GET"


class Dialect(Protocol):
    """One CDN's token format, bound to its settings and keys."""

    @property
    def name(self) -> str: ...

    @property
    def prefix_signing(self) -> bool:
        """True: one signature covers a prefix/ACL (sign once per session); False: one per URL."""
        ...

    def sign(self, grant: Grant, *, url: str | None = None) -> Credentials: ...

    def verify(self, request: EdgeRequest, *, now: float) -> Grant:
        """Raise TokenDenied (typed reason, values) or return what the token grants.

        Dialects the gateway cannot check as an edge raise NotImplementedError.
        """
        ...


DialectFactory = Any  # Callable[[Mapping[str, Any]], Dialect] with keyword base_dir; kept loose for modules
