"""Reading what the edge needs from a raw ASGI scope, cheaply (no Starlette accessors on the hot path)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any

from gateway.grant import IPAddress


def split_token(query_string: bytes, param: str) -> tuple[str | None, str]:
    """(the first value of `param`, the query without any `param`) from a raw query string.

    The remaining query is forwarded to the origin as the client sent it (LL-HLS `_HLS_*` directives
    included); the token never is.
    """
    if not query_string:
        return None, ""
    text = query_string.decode("latin-1")
    if f"{param}=" not in text:
        return None, text
    token: str | None = None
    kept: list[str] = []
    prefix = param + "="
    for pair in text.split("&"):
        if pair.startswith(prefix):
            if token is None:
                token = pair[len(prefix) :]
        elif pair:
            kept.append(pair)
    return token, "&".join(kept)


def drop_query_param(query: str, name: str) -> str:
    """The query without any `name` or `name=…` pair (other pairs keep their bytes and order)."""
    if name not in query:
        return query
    prefix = name + "="
    return "&".join(pair for pair in query.split("&") if pair != name and not pair.startswith(prefix))


def split_query(query: str, names: tuple[str, ...]) -> tuple[str, str]:
    """(the query without any pair named in `names`, those pairs): both raw, each keeping its order.

    A dialect edge forwards the first to the origin and writes the second (its credential, exactly as
    the viewer presented it) onto the URIs of the playlists it serves.
    """
    if not query or not names:
        return query, ""
    kept: list[str] = []
    taken: list[str] = []
    for pair in query.split("&"):
        if pair:
            (taken if pair.partition("=")[0] in names else kept).append(pair)
    return "&".join(kept), "&".join(taken)


def client_address(scope: Mapping[str, Any], trusted_header: str = "") -> IPAddress | None:
    """The client's IP: the TCP peer, or the left-most address of a header set by a trusted proxy."""
    if trusted_header:
        name = trusted_header.encode("latin-1")
        for header, value in scope.get("headers", ()):
            if header == name:
                candidate = value.decode("latin-1").split(",")[0].strip()
                try:
                    return ipaddress.ip_address(candidate)
                except ValueError:
                    return None
    client = scope.get("client")
    if not client:
        return None
    try:
        return ipaddress.ip_address(client[0])
    except ValueError:
        return None


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def token_fingerprint(token: str) -> str:
    """What logs show instead of a token (a bearer credential): 8 hex chars of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]
