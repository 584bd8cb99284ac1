"""`queryparam` delivery: one manifest for every viewer; the player hands the token on itself.

HLS playlists (multivariant and media) declare `#EXT-X-DEFINE:QUERYPARAM="<token_param>"` and every URI gets
`<token_param>={$<token_param>}`; DASH MPDs get the Annex I `UrlQueryInfo` descriptors (and optionally
`RequestParam`): see gateway/manifests/query_param.py. The player substitutes the token from the URL it
loaded the manifest with, so nothing in a manifest is a viewer's and a shared cache may serve it to all
(`Cache-Control: public`, never longer than the origin allows; gateway/http/edge.py).

The token then rides on every request of the session, like a path token: the session API issues it for
the session's whole life (bind it to the client network with `[sessions] ip_binding`), or the player's
request hook swaps in refreshed ones.
"""

from __future__ import annotations

from gateway.config import Route
from gateway.http.access import Access
from gateway.http.links import make_query_param_rewriter, make_uri_rewriter
from gateway.http.media_types import is_hls_playlist
from gateway.manifests.hls import RewriteUri
from gateway.manifests.query_param import declare_hls_query_param, declare_mpd_query_param
from gateway.manifests.template import PreparedManifest


class QueryParamWriter:
    shared = True
    identical = True

    def __init__(self, route: Route, *, token_param: str) -> None:
        self.route = route
        self.token_param = token_param
        self._variant = f"queryparam:{route.mount}"

    def variant(self, access: Access) -> str:
        return self._variant

    def declare(self, access: Access, body: bytes) -> bytes:
        """The origin's manifest with the standard's declaration added (before it is prepared)."""
        if _is_hls(access):
            return declare_hls_query_param(body, self.token_param)
        return declare_mpd_query_param(body, request_param=self.route.request_param)

    def rewriter(self, access: Access) -> RewriteUri:
        if _is_hls(access):
            return make_query_param_rewriter(
                manifest_origin_url=access.origin_url, route=self.route, param=self.token_param
            )
        # The MPD's descriptors tell the player to append the query itself: URIs are only made ours.
        return make_uri_rewriter(manifest_origin_url=access.origin_url, route=self.route, token_param=None)

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        return manifest.render({})  # no slots: the same bytes for every viewer

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        return []


def _is_hls(access: Access) -> bool:
    return is_hls_playlist(access.origin_url.split("?", 1)[0])
