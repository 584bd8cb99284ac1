"""Requests and accesses built by hand, so guards, writers and the edge dispatcher are tested without a server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.config import Route
from gateway.http.access import Access, EdgeCarry, Incoming, origin_url_for
from gateway.http.delivery import FoundToken
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant

NOW = 1_800_000_000


def asgi_scope(
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    host: str = "127.0.0.1",
    client: str | None = "127.0.0.1",
) -> dict[str, Any]:
    """The raw ASGI scope a server hands the gateway for `method path?query`."""
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", host.encode()), *((k.lower().encode(), v.encode()) for k, v in headers)],
        "client": (client, 5000) if client else None,
    }


def access_for(
    route: Route,
    grant: Grant,
    credential: str,
    *,
    path: str,
    query: str = "",
    source: str | None = "query",
    now: float = NOW,
    edge: EdgeCarry | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Access:
    """What a guard would have returned for a request of `path` carrying `credential` (from `source`)."""
    checked = normalise_path(path)
    incoming = Incoming(
        asgi_scope(path, query), path.encode(), FoundToken(credential, source, path.encode()), checked, route, now
    )
    return Access(
        incoming, grant, checked, origin_url_for(route, checked, query), credential, tuple(headers), None, edge
    )
