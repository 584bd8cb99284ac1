"""Manifests for a CDN: segments (or everything but manifests) point at a CDN host carrying that CDN's
token, so the edge verifies with no call back to the gateway.

Per route: `cdn = "<dialect>"` (a `[dialects.<name>]` table), `cdn_base_url` (the CDN URL that stands for
the route's mount, as `origin` does: `/vod/title/x.ts` under mount `/vod/` is `<cdn_base_url>title/x.ts`)
and `cdn_scope` (`segments`: segments, parts, init sections; `media`: keys
too). How the credentials travel is read off the dialect once, at start-up (`CdnBinding.delivery`):
- `query`: a prefix/ACL signature, made once per session and expiry bucket; its query string fills
  `Slot.CDN` after each CDN URL;
- `per_url`: the dialect must sign each URL; URLs are marked (`Slot.CDN_URL`) and signed at render time,
  cached per URL and bucket;
- `cookie`: the playlist response sets the dialect's cookies; CDN URLs stay clean;
- `path`: the token replaces the title prefix in the CDN path (`<base>/<token>/<rest>`, Cloudflare
  Stream's video-id slot); signed once per bucket like `query`, spliced in at render time.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import posixpath
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from gateway.config import Route
from gateway.config_schema import CdnScope
from gateway.errors import ConfigError
from gateway.http.links import gateway_reference
from gateway.http.request_facts import drop_query_param
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import PreparedManifest, Rewrite, Slot
from gateway.tokens.dialects.base import Cookie, Credentials, Dialect
from gateway.tokens.grant import Grant, Scope

log = logging.getLogger("gateway.http.cdn")

KEY_TAGS = frozenset({"EXT-X-KEY", "EXT-X-SESSION-KEY"})
_URL_MARK = "\x01"
_MARKED_URL = re.compile(rb"(https?://[^\s\"\x01]+)\x01")
# A reference of any kind (relative too) followed by its `?`/`&` and the mark: in HLS it starts after a
# newline or a quote, in an MPD after a quote or '>'; none of those can be inside a reference.
_MARKED_REFERENCE = re.compile(rb"([^\x00-\x20\"'<>\x01]+)\x01")


def cdn_path(route: Route, gateway_path: str) -> str:
    """Where a gateway path under the route's mount lives on the CDN (the path part only)."""
    return urlsplit(route.cdn_base_url).path + gateway_path[len(route.mount) :]


def cdn_url(route: Route, manifest_gateway_path: str, reference: str) -> str:
    """The CDN URL for a reference (relative, or a root-relative gateway path) found in a manifest."""
    joined = urlsplit(urljoin(manifest_gateway_path, reference))
    path = posixpath.normpath(joined.path) + ("/" if joined.path.endswith("/") else "")
    if not path.startswith(route.mount):
        raise ValueError(f"{path} is outside the route mounted at {route.mount}")
    base = urlsplit(route.cdn_base_url)
    return f"{base.scheme}://{base.netloc}{cdn_path(route, path)}" + (f"?{joined.query}" if joined.query else "")


@dataclass(frozen=True)
class CdnBinding:
    """A dialect as a route's CDN, with how its credentials travel (probed once)."""

    dialect: Dialect
    delivery: str  # query | per_url | cookie | path

    @classmethod
    def probe(cls, dialect: Dialect, sample_prefix: str) -> CdnBinding:
        """Sign a throwaway grant for `sample_prefix` (under the route's mount) to see where credentials go."""
        if not dialect.prefix_signing:
            return cls(dialect, "per_url")
        credentials = dialect.sign(Grant((sample_prefix,), 2**31))
        if credentials.query:
            return cls(dialect, "query")
        if credentials.cookies:
            return cls(dialect, "cookie")
        if credentials.path_token:
            return cls(dialect, "path")
        raise ConfigError(
            f"dialect {dialect.name}: its credentials travel in headers or the path, which a manifest cannot "
            "carry to a CDN; configure query or cookie delivery"
        )


def make_cdn_rewriter(
    gateway_rewriter: RewriteUri,
    *,
    route: Route,
    binding: CdnBinding,
    manifest_origin_url: str,
    manifest_gateway_path: str,
    token_param: str,
) -> RewriteUri:
    """Wrap the gateway's own rewriter: CDN-scoped places get CDN URLs, everything else stays ours."""

    def rewrite(uri: str, place: UriPlace) -> Rewrite | None:
        on_cdn = place.slot is Slot.MEDIA and (route.cdn_scope is CdnScope.MEDIA or place.tag not in KEY_TAGS)
        if not on_cdn:
            return gateway_rewriter(uri, place)
        reference = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if reference is None:
            return None
        reference, _, fragment = reference.partition("#")
        path, _, query = reference.partition("?")
        query = drop_query_param(query, token_param)
        try:
            url = cdn_url(route, manifest_gateway_path, path + (f"?{query}" if query else ""))
        except ValueError:
            return gateway_rewriter(uri, place)  # outside this route: not the CDN's to serve
        tail = f"#{fragment}" if fragment else ""
        if binding.delivery == "cookie":
            return Rewrite(url, None, tail)
        if binding.delivery in ("per_url", "path"):
            return Rewrite(url, Slot.CDN_URL, tail)
        return Rewrite(url + ("&" if "?" in url else "?"), Slot.CDN, tail)

    return rewrite


class CdnSigner:
    """A session's CDN credentials, signed once per expiry bucket (and per URL only where the CDN must)."""

    def __init__(self, binding: CdnBinding, route: Route, *, cache_size: int = 4096) -> None:
        self.binding = binding
        self.route = route
        self._credentials: OrderedDict[Grant, Credentials] = OrderedDict()
        self._urls: OrderedDict[tuple[Grant, str], Credentials] = OrderedDict()
        self._cache_size = cache_size
        self._warned: set[str] = set()

    def cdn_grant(self, grant: Grant, expires_at: int) -> Grant:
        """What the CDN is told: the session's prefixes in CDN paths, its network and ids, until `expires_at`."""
        prefixes = tuple(cdn_path(self.route, p) for p in grant.path_prefixes if p.startswith(self.route.mount))
        return dataclasses.replace(
            grant, path_prefixes=prefixes, scope=Scope.ALL, expires_at=expires_at, not_before=None, key_id=None
        )

    def credentials(self, grant: Grant) -> Credentials:
        found = self._credentials.get(grant)
        if found is None:
            found = self._credentials[grant] = self.binding.dialect.sign(grant)
            if len(self._credentials) > self._cache_size:
                self._credentials.popitem(last=False)
        return found

    def signed_url(self, grant: Grant, url: str) -> str:
        if self.binding.delivery == "path":
            return self._path_token_url(grant, url)
        signed = self.url_credentials(grant, url).url
        if signed is None:
            raise ConfigError(f"dialect {self.binding.dialect.name} returned no signed URL")
        return signed

    def url_credentials(self, grant: Grant, url: str) -> Credentials:
        """The dialect's signature for one URL, made once per grant and URL (an LRU of them)."""
        key = (grant, url)
        found = self._urls.get(key)
        if found is None:
            found = self._urls[key] = self.binding.dialect.sign(grant, url=url)
            if len(self._urls) > self._cache_size * 16:
                self._urls.popitem(last=False)
        else:
            self._urls.move_to_end(key)
        return found

    def _path_token_url(self, grant: Grant, url: str) -> str:
        """`<base>/<prefix><rest>` -> `<base>/<token>/<rest>`: one signature per bucket, not per URL."""
        token = self.credentials(grant).path_token or ""
        parts = urlsplit(url)
        prefix = grant.path_prefixes[0]
        if not parts.path.startswith(prefix):
            raise ConfigError(f"CDN URL {url} is outside the session prefix {prefix}")
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{parts.netloc}/{token}/{parts.path[len(prefix) :]}{query}"

    def render(self, prepared: PreparedManifest, tokens: Mapping[Slot, str], grant: Grant) -> bytes:
        """Render with the CDN slots filled; per-URL slots are signed URL by URL."""
        filled = dict(tokens)
        kinds = prepared.slot_kinds
        if Slot.CDN in kinds:
            filled[Slot.CDN] = self.credentials(grant).query_string()
        if Slot.CDN_URL not in kinds:
            return prepared.render(filled)
        filled[Slot.CDN_URL] = _URL_MARK
        return _MARKED_URL.sub(
            lambda match: self.signed_url(grant, match.group(1).decode()).encode(), prepared.render(filled)
        )

    def render_references(self, prepared: PreparedManifest, grant: Grant, *, base_url: str, xml: bool) -> bytes:
        """Render a playlist whose per-URL slots follow references of any kind (a dialect edge's own playlist).

        Each marked reference is resolved against `base_url` (the playlist's URL as the viewer requested
        it), signed for `grant`, and written as it was with the signature's query appended: the URI stays
        relative, so the prepared playlist is shared by every host name and viewer. A URL the dialect
        refuses to sign (outside the grant, a host it does not serve) is written bare: its request will be
        refused at the edge, which is the right answer for it. `xml`: the playlist is an MPD, where the
        references are XML-escaped and the appended '&' must be too.
        """
        rendered = prepared.render({Slot.CDN_URL: _URL_MARK})
        if Slot.CDN_URL not in prepared.slot_kinds:
            return rendered

        def sign(match: re.Match[bytes]) -> bytes:
            head = match.group(1).decode("utf-8", "surrogateescape")  # `<reference>?` or `<reference>&`
            reference = html.unescape(head[:-1]) if xml else head[:-1]
            try:
                query = self.url_credentials(grant, urljoin(base_url, reference)).query_string()
            except ValueError as exc:
                if str(exc) not in self._warned and len(self._warned) < 64:  # say it, but not per request
                    self._warned.add(str(exc))
                    log.warning("dialect %s cannot sign a playlist URI: %s", self.binding.dialect.name, exc)
                return head[:-1].encode("utf-8", "surrogateescape")
            return (head + (query.replace("&", "&amp;") if xml else query)).encode("utf-8", "surrogateescape")

        return _MARKED_REFERENCE.sub(sign, rendered)

    def cookies(self, grant: Grant) -> tuple[Cookie, ...]:
        return self.credentials(grant).cookies if self.binding.delivery == "cookie" else ()
