"""How the gateway rewrites one URI of an HLS playlist: the policy half of the rewriter callback.

Relative references stay relative (they resolve against the gateway URL the player used, which mirrors
the origin's layout) and gain a token slot. Absolute URIs on the protected origin become root-relative
gateway paths. URIs on other hosts and non-HTTP schemes (`skd://`, `data:`) are left alone.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from gateway.config import Route
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import Rewrite
from gateway.manifests.uris import is_rewritable_reference, with_query_slot


def gateway_reference(uri: str, *, manifest_origin_url: str, route: Route) -> str | None:
    """The reference to write for `uri` (without token), or None when it is not ours to touch."""
    if ":" not in uri and not uri.startswith("/") and uri[:1] > " ":
        return uri  # the common case, decided without parsing: relative, resolves the same way at the gateway
    if not is_rewritable_reference(uri):
        return None
    parts = urlsplit(uri)
    if not parts.scheme and not parts.netloc and not uri.startswith("/"):
        return uri
    absolute = urlsplit(urljoin(manifest_origin_url, uri))
    origin = urlsplit(route.origin)
    if (absolute.scheme, absolute.netloc) != (origin.scheme, origin.netloc) or not absolute.path.startswith(
        origin.path
    ):
        return None  # another host (or outside the route): not protected by this gateway
    path = route.mount + absolute.path[len(origin.path) :]
    query = f"?{absolute.query}" if absolute.query else ""
    fragment = f"#{absolute.fragment}" if absolute.fragment else ""
    return path + query + fragment


def make_uri_rewriter(*, manifest_origin_url: str, route: Route, token_param: str | None) -> RewriteUri:
    """The callback for `prepare_playlist`: query-token slots, or (token_param None) plain rewriting."""

    def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
        reference = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if reference is None:
            return None
        if token_param is None:
            return None if reference == uri else Rewrite(reference, None)
        return with_query_slot(reference, token_param, place.slot)

    return rewrite


def make_path_token_rewriter(*, manifest_origin_url: str, route: Route) -> RewriteUri:
    """Path-token mode: relative URIs inherit `/t/<token>/` untouched; absolute ones get it spliced in."""

    def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
        reference = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if reference is None or (reference == uri and not uri.startswith("/")):
            return None
        return Rewrite("/t/", place.slot, reference)

    return rewrite
