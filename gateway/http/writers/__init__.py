"""Manifest writers, one per delivery: query, cookie, hybrid, path, queryparam, CDN (around one of those), dialect edge.
`writer_for` picks a route's at start-up (see base.py for what a writer owns)."""

from __future__ import annotations

from gateway.config import Route, Settings
from gateway.http.cdn import CdnBinding, CdnSigner, cdn_path
from gateway.http.writers.base import (
    PRIVATE,
    ManifestWriter,
    TokenWriter,
    manifest_response,
    prepare_manifest,
    shared_cache_control,
)
from gateway.http.writers.cdn import CdnWriter
from gateway.http.writers.cookie import CookieWriter, HybridWriter
from gateway.http.writers.dialect import DialectEdgeWriter
from gateway.http.writers.path import PathWriter
from gateway.http.writers.query import QueryWriter
from gateway.http.writers.query_param import QueryParamWriter
from gateway.tokens.scoped import ScopedTokenMinter

__all__ = ["PRIVATE", "ManifestWriter", "manifest_response", "prepare_manifest", "shared_cache_control", "writer_for"]


def writer_for(route: Route, settings: Settings, minter: ScopedTokenMinter) -> ManifestWriter:
    if route.edge:
        return DialectEdgeWriter(route, settings.dialects[route.edge])
    writer: TokenWriter
    if route.delivery == "cookie":
        writer = CookieWriter(route, sessions=settings.sessions, minter=minter, proxy_trust=settings.proxy_trust)
    elif route.delivery == "hybrid":
        writer = HybridWriter(route, sessions=settings.sessions, minter=minter, proxy_trust=settings.proxy_trust)
    elif route.delivery == "path":
        writer = PathWriter(route)
    elif route.delivery == "queryparam":
        return QueryParamWriter(route, token_param=settings.token_param)  # no cdn: refused by Route
    else:
        writer = QueryWriter(route, token_param=settings.token_param, minter=minter)
    if not route.cdn:
        return writer
    # Probing where the dialect puts its credentials (query, cookie, path, per URL) fails fast at start-up.
    binding = CdnBinding.probe(settings.dialects[route.cdn], cdn_path(route, route.mount + "probe/"))
    signer = CdnSigner(binding, route)
    return CdnWriter(writer, route, signer=signer, token_param=settings.token_param, minter=minter)
