"""How the gateway rewrites one URI of an HLS playlist: the policy half of the rewriter callback.

Relative references stay relative (they resolve against the gateway URL the player used, which mirrors
the origin's layout) and gain a token slot. Absolute URIs on the protected origin become root-relative
gateway paths. URIs on other hosts and non-HTTP schemes (`skd://`, `data:`) are left alone.
"""

from __future__ import annotations

import enum
import posixpath
from urllib.parse import urljoin, urlsplit

from gateway.config import Route
from gateway.manifests.dash import BASE_URL_BESIDE_ANOTHER_HOST
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import Rewrite, Slot
from gateway.manifests.uris import as_browsers_read, is_rewritable_reference, with_query_credentials, with_query_slot


def gateway_reference(uri: str, *, manifest_origin_url: str, route: Route) -> str | None:
    """The reference to write for `uri` (without token), or None when it is not ours to touch.

    Decided on the form a browser resolves (`as_browsers_read`): `\\\\host/x` is another host, keeps
    its bytes and gets no token.
    """
    uri = as_browsers_read(uri)
    if ":" not in uri and not uri.startswith("/") and uri[:1] > " ":
        return uri  # the common case, decided without parsing: relative, resolves the same way at the gateway
    if not is_rewritable_reference(uri):
        return None
    parts = urlsplit(uri)
    if not parts.scheme and not parts.netloc and not uri.startswith("/"):
        return uri
    absolute = urlsplit(urljoin(manifest_origin_url, uri))
    origin = urlsplit(route.origin)
    # urljoin removes dot segments from a relative reference but not from an absolute URI: remove them here
    # too, so the path is judged as browsers resolve it and a rewritten reference rewrites to itself.
    absolute_path = remove_dot_segments(absolute.path) if "/." in absolute.path else absolute.path
    if (absolute.scheme, absolute.netloc) != (origin.scheme, origin.netloc) or not absolute_path.startswith(
        origin.path
    ):
        return None  # another host (or outside the route): not protected by this gateway
    path = route.mount + absolute_path[len(origin.path) :]
    query = f"?{absolute.query}" if absolute.query else ""
    fragment = f"#{absolute.fragment}" if absolute.fragment else ""
    return path + query + fragment


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path: `/a/./b/../c` -> `/a/c` (no climbing above the root)."""
    segments = path.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(segment)
    return "/".join(out)


def on_route(url: str, *, manifest_origin_url: str, route: Route) -> bool:
    """Whether the absolute `url` is on the route's origin: a place it may carry the gateway's token to (the
    DASH rewriter asks this of every URL a place resolves to through its BaseURLs)."""
    return gateway_reference(url, manifest_origin_url=manifest_origin_url, route=route) is not None


class _UriRewriter:
    """The callback for `prepare_playlist`: query-token slots, or (token_param None) plain rewriting."""

    __slots__ = ("manifest_origin_url", "plain_relative_suffix", "route", "token_param")

    def __init__(self, manifest_origin_url: str, route: Route, token_param: str | None) -> None:
        self.manifest_origin_url, self.route, self.token_param = manifest_origin_url, route, token_param
        # A plain relative URI is its own gateway reference and has no query: it gains `?param=` + slot
        # (the same call's answer, declared so the rewriter skips the call on every segment line).
        self.plain_relative_suffix = (
            None if token_param is None else with_query_slot("a", token_param, Slot.MEDIA).head.removeprefix("a")
        )

    def __call__(self, uri: str, place: UriPlace) -> Rewrite | None:
        reference = gateway_reference(uri, manifest_origin_url=self.manifest_origin_url, route=self.route)
        if reference is None:
            return None
        if self.token_param is None:
            return None if reference == uri or place is BASE_URL_BESIDE_ANOTHER_HOST else Rewrite(reference, None)
        if place is BASE_URL_BESIDE_ANOTHER_HOST:
            # A query on a BaseURL never reaches what resolves below it, and those places carry no token of
            # their own (the other host must not see one): the token rides in the path, `/t/<token>/…`.
            return Rewrite("/t/", place.slot, reference)
        return with_query_slot(reference, self.token_param, place.slot)


def make_uri_rewriter(*, manifest_origin_url: str, route: Route, token_param: str | None) -> RewriteUri:
    """The callback for `prepare_playlist`: query-token slots, or (token_param None) plain rewriting."""
    return _UriRewriter(manifest_origin_url, route, token_param)


def make_query_param_rewriter(*, manifest_origin_url: str, route: Route, param: str) -> RewriteUri:
    """queryparam delivery (HLS): `<param>={$<param>}` on every URI of ours, for the player to fill in from
    the playlist's own URL (EXT-X-DEFINE QUERYPARAM); the same bytes for every viewer, no slot."""
    reference = "{$" + param + "}"

    def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
        target = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if target is None:
            return None
        head, _, tail = with_query_slot(target, param, place.slot)
        return Rewrite(head + reference + tail, None)

    return rewrite


def make_path_token_rewriter(*, manifest_origin_url: str, route: Route) -> RewriteUri:
    """Path-token mode: relative URIs inherit `/t/<token>/` untouched; absolute ones get it spliced in."""

    def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
        reference = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if reference is None or (reference == uri and not uri.startswith("/")):
            return None
        return Rewrite("/t/", place.slot, reference)

    return rewrite


class Carry(enum.Enum):
    """How the URIs of a playlist served on a dialect-edge route carry the dialect's credential."""

    QUERY = "query"  # the request's own credential parameters, appended to every URI
    PER_URL = "per_url"  # every URI signed on its own at render time (`Slot.CDN_URL`, see gateway.http.cdn)
    INHERIT = "inherit"  # nothing written: relative URIs inherit a path credential; cookies/headers ride along


def relative_reference(reference: str, directory: str) -> str:
    """A root-relative `reference` (path, query, fragment) written relative to `directory` (ending in '/')."""
    split_at = min((i for i in (reference.find("?"), reference.find("#")) if i >= 0), default=len(reference))
    path, rest = reference[:split_at], reference[split_at:]
    relative = posixpath.relpath(path, directory)
    if path.endswith("/") and not relative.endswith("/"):
        relative += "/"
    if relative in (".", "./") or ":" in relative.partition("/")[0]:
        relative = "./" + relative.removeprefix(".").lstrip("/")  # '.' names the directory; 'a:b' is no scheme
    return relative + rest


def make_edge_rewriter(
    *,
    manifest_origin_url: str,
    manifest_path: str,
    route: Route,
    carry: Carry,
    params: tuple[str, ...],
    mapped: str | None,
) -> RewriteUri:
    """The callback for playlists served on a dialect-edge route (see gateway/http/dialect_edge.py).

    References are resolved as for the gateway's own tokens (`gateway_reference`: other hosts and non-HTTP
    schemes untouched). When the request path stands for the resource through a prefix (`mapped`: a token
    or an id in the path), references below that prefix are written relative to the playlist, so they
    inherit the request's prefix, and with it the credential, exactly as the dialect's own URLs do. Then
    `carry` decides what each URI gets: the credential query slot, a per-URL signature slot (not on DASH
    SegmentTemplate: a template names many URLs, no one signature covers them), or nothing.
    """
    directory = manifest_path.rsplit("/", 1)[0] + "/"

    def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
        reference = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if reference is None:
            return None
        if mapped is not None and reference.startswith(mapped):
            reference = relative_reference(reference, directory)
        if carry is Carry.QUERY:
            return with_query_credentials(reference, params, place.slot)
        if carry is Carry.PER_URL and place.tag != "SegmentTemplate":
            return with_query_credentials(reference, params, Slot.CDN_URL)
        return None if reference == uri else Rewrite(reference, None)

    return rewrite
