"""`path` delivery: `/t/<token>/vod/title/…`. Relative URIs inherit the token with no rewriting at all;
root-relative and absolute ones on the origin get `/t/<token>` spliced in. The token cannot be renewed
without rewriting every URI, so the session API issues it for the session's whole life."""

from __future__ import annotations

from gateway.config import Route
from gateway.http.access import Access
from gateway.http.links import make_path_token_rewriter
from gateway.http.writers.base import same_token
from gateway.manifests.hls import RewriteUri
from gateway.manifests.template import PreparedManifest, Slot


class PathWriter:
    shared = False
    identical = False

    def __init__(self, route: Route) -> None:
        self.route = route
        self._variant = f"path:{route.mount}"

    def declare(self, access: Access, body: bytes) -> bytes:
        return body

    def variant(self, access: Access) -> str:
        return self._variant

    def rewriter(self, access: Access) -> RewriteUri:
        return make_path_token_rewriter(manifest_origin_url=access.origin_url, route=self.route)

    def slot_tokens(self, manifest: PreparedManifest, access: Access) -> dict[Slot, str]:
        return same_token(access.credential)

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        return manifest.render(self.slot_tokens(manifest, access))

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        return []
