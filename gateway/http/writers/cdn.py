"""A route with `cdn = "<dialect>"`: its delivery's writer, with segments (or everything but manifests) on
the CDN in that CDN's dialect (the URL rewriting and signing are gateway/http/cdn.py).

Manifests stay on the gateway with the delivery's own tokens; CDN URLs carry a credential signed once per
session and expiry bucket (per URL only where the dialect has no prefix form), never living longer than the
media tokens the same manifest would carry, or the CDN's cookies set on the manifest response.
"""

from __future__ import annotations

from gateway.config import Route
from gateway.http.access import Access
from gateway.http.cdn import CdnSigner, make_cdn_rewriter
from gateway.http.writers.base import TokenWriter
from gateway.manifests.hls import RewriteUri
from gateway.manifests.template import PreparedManifest, Slot
from gateway.tokens.grant import Grant
from gateway.tokens.scoped import ScopedTokenMinter


class CdnWriter:
    shared = False
    identical = False

    def __init__(
        self, delivery: TokenWriter, route: Route, *, signer: CdnSigner, token_param: str, minter: ScopedTokenMinter
    ) -> None:
        self.delivery = delivery
        self.route = route
        self.signer = signer
        self.token_param = token_param
        self.minter = minter
        self._suffix = f"+cdn:{route.cdn}"

    def declare(self, access: Access, body: bytes) -> bytes:
        return self.delivery.declare(access, body)

    def variant(self, access: Access) -> str:
        return self.delivery.variant(access) + self._suffix

    def rewriter(self, access: Access) -> RewriteUri:
        return make_cdn_rewriter(
            self.delivery.rewriter(access),
            route=self.route,
            binding=self.signer.binding,
            manifest_origin_url=access.origin_url,
            manifest_gateway_path=access.resource.encoded,
            token_param=self.token_param,
        )

    def slot_tokens(self, manifest: PreparedManifest, access: Access) -> dict[Slot, str]:
        return self.delivery.slot_tokens(manifest, access)

    def cdn_grant(self, manifest: PreparedManifest, access: Access) -> Grant:
        """What the CDN is told for this manifest: no longer than its media tokens, nor the presented token."""
        grant = access.grant
        ends = grant.session_ends_at or grant.expires_at
        media_expiry = self.minter.media_expiry(access.now, ends, reloaded=manifest.renews_its_uris)
        return self.signer.cdn_grant(grant, min(media_expiry, grant.expires_at, ends))

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        return self.signer.render(manifest, self.slot_tokens(manifest, access), self.cdn_grant(manifest, access))

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        """The CDN's cookies (cookie-delivered dialects) on manifests, then the delivery's own."""
        own = self.delivery.cookies(access, manifest)
        if manifest is None:
            return own
        cdn = self.signer.cookies(self.cdn_grant(manifest, access))  # signed once per grant: cached
        return [cookie.set_cookie(now=access.now) for cookie in cdn] + own
