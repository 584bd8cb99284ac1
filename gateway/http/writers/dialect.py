"""A dialect-edge route (`edge = "<dialect>"`): every URI of a served manifest carries a credential the same
edge accepts (how, per request: `Carry`, decided by gateway/http/dialect_edge.py).

    QUERY    the request's own credential parameters, byte for byte, on every URI
    PER_URL  each URI signed on its own for the verified grant, cached per URL and grant
    INHERIT  nothing written: relative URIs inherit a path credential; cookies and headers ride along

Prepared once per origin version and way of carrying; per request only the credential is filled in, or
(per-URL dialects) each URI signed. No cookies of the gateway's own: the dialect's credential is the session.
"""

from __future__ import annotations

from gateway.config import Route
from gateway.http.access import Access, EdgeCarry
from gateway.http.cdn import CdnBinding, CdnSigner
from gateway.http.dialect_edge import per_url_grant
from gateway.http.links import Carry, make_edge_rewriter
from gateway.http.media_types import is_hls_playlist
from gateway.http.writers.base import same_token
from gateway.manifests.hls import RewriteUri
from gateway.manifests.template import PreparedManifest
from gateway.tokens.dialects.base import Dialect


def _carried(access: Access) -> EdgeCarry:
    assert access.edge is not None, "a dialect-edge route is judged by its DialectGuard"
    return access.edge


class DialectEdgeWriter:
    shared = False
    identical = False

    def __init__(self, route: Route, dialect: Dialect) -> None:
        self.route = route
        self.dialect = dialect
        # A dialect that signs one URL at a time signs the URIs of the playlists it serves one by one.
        self.signer = None if dialect.prefix_signing else CdnSigner(CdnBinding(dialect, "per_url"), route)

    def declare(self, access: Access, body: bytes) -> bytes:
        return body

    def variant(self, access: Access) -> str:
        edge = _carried(access)
        return f"edge:{self.route.edge}:{edge.carry.value}:{edge.mapped or ''}"

    def rewriter(self, access: Access) -> RewriteUri:
        edge = _carried(access)
        return make_edge_rewriter(
            manifest_origin_url=access.origin_url,
            manifest_path=access.resource.encoded,
            route=self.route,
            carry=edge.carry,
            params=self.dialect.query_params,
            mapped=edge.mapped,
        )

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        edge = _carried(access)
        xml = not is_hls_playlist(access.origin_url.split("?", 1)[0])
        if edge.carry is Carry.PER_URL:
            assert self.signer is not None  # PER_URL is only decided for dialects without prefix signing
            grant = per_url_grant(access.grant, self.route.mount)
            return self.signer.render_references(manifest, grant, base_url=edge.request_url, xml=xml)
        credential = access.credential.replace("&", "&amp;") if xml else access.credential
        return manifest.render(same_token(credential))

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        return []
