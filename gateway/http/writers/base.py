"""What every manifest writer does, and the pieces they share.

A writer owns one delivery's manifests: how a manifest is prepared for it (`rewriter`, and `variant`, the
manifest cache's name for that preparation: one prepared template per origin version and variant, shared
by every viewer), how a prepared manifest is rendered for one request (`render`: its tokens filled in),
and which cookies go with a response (`cookies`, for manifests and for the segments streamed beside them).
"""

from __future__ import annotations

import functools
from typing import Protocol

from starlette.responses import Response

from gateway.config import Route
from gateway.http.access import Access
from gateway.http.links import on_route
from gateway.http.media_types import CONTENT_TYPES, extension, is_hls_playlist
from gateway.manifests.dash import prepare_mpd
from gateway.manifests.hls import RewriteUri, prepare_playlist
from gateway.manifests.template import PreparedManifest, Slot

PRIVATE = "private, no-store"  # a tokenized response is this viewer's alone


class ManifestWriter(Protocol):
    # True where a rendered manifest is the same for every viewer and holds no credential: it may be served
    # `Cache-Control: public` (gateway/http/edge.py). Cookie delivery's manifests are token-free too, but
    # their responses may set a viewer's cookie.
    shared: bool
    # True where the rendered bytes are the same for every viewer (no credential in them, cookies aside): the
    # nginx front may cache them and serve them to every viewer its verdict admits (gateway/http/front_cache.py).
    identical: bool

    def declare(self, access: Access, body: bytes) -> bytes:
        """The origin's manifest with what this delivery declares in it, before it is prepared (queryparam:
        EXT-X-DEFINE / UrlQueryInfo); `body` itself for the others."""
        ...

    def variant(self, access: Access) -> str:
        """The manifest cache's name for how this writer prepares manifests for `access` (never per viewer)."""
        ...

    def rewriter(self, access: Access) -> RewriteUri:
        """The URI rewriter a manifest at `access.origin_url` is prepared with (once per origin version)."""
        ...

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        """The prepared manifest with this request's credentials filled in."""
        ...

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        """`Set-Cookie` values for the response to `access` (`manifest` None: a streamed segment, key, …)."""
        ...


class TokenWriter(ManifestWriter, Protocol):
    """A writer of the gateway's own tokens: what fills each token slot is its own decision (the CDN writer
    wraps one and adds the CDN's credentials to the same render)."""

    def slot_tokens(self, manifest: PreparedManifest, access: Access) -> dict[Slot, str]: ...


def same_token(token: str) -> dict[Slot, str]:
    """Every token slot filled with one credential (as presented, or minted once for the response)."""
    return {Slot.PLAYLIST: token, Slot.MEDIA: token}


def prepare_manifest(
    origin_url: str, body: bytes, rewriter: RewriteUri, *, max_bytes: int, route: Route | None = None
) -> PreparedManifest:
    """HLS playlists and DASH MPDs share one slot model; the URL's extension picks the rewriter (everything
    not HLS is DASH: MPDs, patches, remote elements). With `route`, a DASH place whose effective base
    (BaseURL hierarchy) is off the route's origin keeps its bytes, as a foreign URI does in HLS."""
    if is_hls_playlist(origin_url.split("?", 1)[0]):
        return prepare_playlist(body, rewriter, max_bytes=max_bytes)
    is_ours = None if route is None else functools.partial(on_route, manifest_origin_url=origin_url, route=route)
    return prepare_mpd(body, rewriter, max_bytes=max_bytes, document_url=origin_url, is_ours=is_ours)


def shared_cache_control(fresh_seconds: float) -> str:
    """A manifest identical for every viewer: any cache may keep it, never longer than the gateway's own copy
    stays fresh (the origin's max-age/Expires, or the gateway's default where the origin gave none)."""
    seconds = int(fresh_seconds)
    return f"public, max-age={seconds}" if seconds > 0 else "public, no-cache"


def manifest_response(origin_url: str, body: bytes, *, head: bool, cache_control: str = PRIVATE) -> Response:
    """A manifest response: a tokenized one is never cached by anyone but this viewer (`PRIVATE`). A DASH
    remote element has no manifest extension of its own: it is an MPD fragment (never a type a browser would
    render)."""
    content_type = CONTENT_TYPES.get(extension(origin_url.split("?", 1)[0]), "application/dash+xml")
    headers = {"cache-control": cache_control, "content-type": content_type}
    return Response(b"" if head else body, headers=headers | {"content-length": str(len(body))})
