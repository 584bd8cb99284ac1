"""`query` delivery (the default): every URI in a manifest carries `?token=…`, with any player, no JavaScript.

The tokens are scoped (gateway/tokens/scoped.py): playlist URIs get a playlist token until the session's
cap, segment/key/init URIs a media token whose life follows what the player can refresh (rolling in a
manifest it reloads, until the cap in one it loads once). Minted per response from the prepared template,
at most once per expiry bucket, never per URI.
"""

from __future__ import annotations

from gateway.config import Route
from gateway.http.access import Access
from gateway.http.links import make_uri_rewriter
from gateway.manifests.hls import RewriteUri
from gateway.manifests.template import PreparedManifest, Slot
from gateway.tokens.scoped import ScopedTokenMinter


class QueryWriter:
    shared = False
    identical = False

    def __init__(self, route: Route, *, token_param: str, minter: ScopedTokenMinter) -> None:
        self.route = route
        self.token_param = token_param
        self.minter = minter
        self._variant = f"query:{route.mount}"

    def declare(self, access: Access, body: bytes) -> bytes:
        return body

    def variant(self, access: Access) -> str:
        return self._variant

    def rewriter(self, access: Access) -> RewriteUri:
        return make_uri_rewriter(manifest_origin_url=access.origin_url, route=self.route, token_param=self.token_param)

    def slot_tokens(self, manifest: PreparedManifest, access: Access) -> dict[Slot, str]:
        return self.minter.slot_tokens(access.grant, access.credential, manifest, now=access.now)

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        return manifest.render(self.slot_tokens(manifest, access))

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        return []
