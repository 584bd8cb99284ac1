"""Manifests for a CDN: segments (or everything but manifests) point at a CDN host carrying that CDN's
token, so the edge verifies with no call back to the gateway.

Per route: `cdn = "<dialect>"` (a `[dialects.<name>]` table), `cdn_base_url` (where the CDN serves the
same paths as the gateway) and `cdn_scope` (`segments`: segments, parts, init sections; `media`: keys
too). How the credentials travel is read off the dialect once, at start-up (`CdnBinding.delivery`):
- `query`: a prefix/ACL signature, made once per session and expiry bucket; its query string fills
  `Slot.CDN` after each CDN URL;
- `per_url`: the dialect must sign each URL; URLs are marked (`Slot.CDN_URL`) and signed at render time,
  cached per URL and bucket;
- `cookie`: the playlist response sets the dialect's cookies; CDN URLs stay clean.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from gateway.config import Route
from gateway.errors import ConfigError
from gateway.grant import Grant, Scope
from gateway.hls_links import gateway_reference
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import PreparedManifest, Rewrite, Slot
from gateway.request_facts import drop_query_param
from gateway.tokens.dialects.base import Cookie, Credentials, Dialect

KEY_TAGS = frozenset({"EXT-X-KEY", "EXT-X-SESSION-KEY"})
_URL_MARK = "\x01"
_MARKED_URL = re.compile(rb"(https?://[^\s\"\x01]+)\x01")
_PROBE = Grant(("/probe/",), 2**31)


def cdn_url(base_url: str, manifest_gateway_path: str, reference: str) -> str:
    """The CDN URL for a reference (relative, or a root-relative gateway path) found in a manifest."""
    joined = urlsplit(urljoin(manifest_gateway_path, reference))
    path = posixpath.normpath(joined.path) + ("/" if joined.path.endswith("/") else "")
    return base_url.rstrip("/") + path + (f"?{joined.query}" if joined.query else "")


@dataclass(frozen=True)
class CdnBinding:
    """A dialect as a route's CDN, with how its credentials travel (probed once)."""

    dialect: Dialect
    delivery: str  # query | per_url | cookie

    @classmethod
    def probe(cls, dialect: Dialect) -> CdnBinding:
        if not dialect.prefix_signing:
            return cls(dialect, "per_url")
        credentials = dialect.sign(_PROBE)
        if credentials.query:
            return cls(dialect, "query")
        if credentials.cookies:
            return cls(dialect, "cookie")
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
        on_cdn = place.slot is Slot.MEDIA and (route.cdn_scope == "media" or place.tag not in KEY_TAGS)
        if not on_cdn:
            return gateway_rewriter(uri, place)
        reference = gateway_reference(uri, manifest_origin_url=manifest_origin_url, route=route)
        if reference is None:
            return None
        reference, _, fragment = reference.partition("#")
        path, _, query = reference.partition("?")
        query = drop_query_param(query, token_param)
        url = cdn_url(route.cdn_base_url, manifest_gateway_path, path + (f"?{query}" if query else ""))
        tail = f"#{fragment}" if fragment else ""
        if binding.delivery == "cookie":
            return Rewrite(url, None, tail)
        if binding.delivery == "per_url":
            return Rewrite(url, Slot.CDN_URL, tail)
        return Rewrite(url + ("&" if "?" in url else "?"), Slot.CDN, tail)

    return rewrite


class CdnSigner:
    """A session's CDN credentials, signed once per expiry bucket (and per URL only where the CDN must)."""

    def __init__(self, binding: CdnBinding, *, cache_size: int = 4096) -> None:
        self.binding = binding
        self._credentials: OrderedDict[Grant, Credentials] = OrderedDict()
        self._urls: OrderedDict[tuple[Grant, str], str] = OrderedDict()
        self._cache_size = cache_size

    @staticmethod
    def cdn_grant(grant: Grant, expires_at: int) -> Grant:
        """What the CDN is told: the session's prefix, network and ids, until `expires_at`."""
        return dataclasses.replace(grant, scope=Scope.ALL, expires_at=expires_at, not_before=None, key_id=None)

    def credentials(self, grant: Grant) -> Credentials:
        found = self._credentials.get(grant)
        if found is None:
            found = self._credentials[grant] = self.binding.dialect.sign(grant)
            if len(self._credentials) > self._cache_size:
                self._credentials.popitem(last=False)
        return found

    def signed_url(self, grant: Grant, url: str) -> str:
        key = (grant, url)
        found = self._urls.get(key)
        if found is None:
            signed = self.binding.dialect.sign(grant, url=url).url
            if signed is None:
                raise ConfigError(f"dialect {self.binding.dialect.name} returned no signed URL")
            found = self._urls[key] = signed
            if len(self._urls) > self._cache_size * 16:
                self._urls.popitem(last=False)
        return found

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

    def cookies(self, grant: Grant) -> tuple[Cookie, ...]:
        return self.credentials(grant).cookies if self.binding.delivery == "cookie" else ()
