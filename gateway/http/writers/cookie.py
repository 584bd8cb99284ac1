"""`cookie` and `hybrid` delivery: manifests carry no token (identical for every viewer, so cacheable) and a
signed cookie, `Path` = the title prefix, rides along.

    cookie  the session API sets the cookie; the edge re-issues it before it expires
    hybrid  the master URL carries a token, exchanged for the cookie on first use; then as `cookie`

A gateway can only hand out a cookie on a response, so its life follows the same rule as media tokens
(`ScopedTokenMinter.lasts_the_session`): handed out with a manifest the player loads once for the whole
title (a VOD media playlist, a static MPD) it lasts until the session's cap, because the player will not
come back for another; otherwise it rolls (`token_ttl_seconds`, re-issued once half its life is gone),
never past the cap.
"""

from __future__ import annotations

import dataclasses

from gateway.config import Route, SessionSettings
from gateway.http.access import Access
from gateway.http.delivery import is_plain_http_localhost, set_cookie
from gateway.http.links import make_uri_rewriter
from gateway.http.request_facts import ProxyTrust, client_address
from gateway.http.writers.base import same_token
from gateway.manifests.hls import RewriteUri
from gateway.manifests.template import PreparedManifest, Slot
from gateway.telemetry.audit import token_issued
from gateway.tokens.grant import Scope
from gateway.tokens.scoped import ScopedTokenMinter

_NO_PROXIES = ProxyTrust()  # the TCP peer is the client


class CookieWriter:
    shared = False
    identical = True
    mode = "cookie"

    def __init__(
        self,
        route: Route,
        *,
        sessions: SessionSettings,
        minter: ScopedTokenMinter,
        proxy_trust: ProxyTrust = _NO_PROXIES,
    ) -> None:
        self.route = route
        self.sessions = sessions
        self.minter = minter
        self.proxy_trust = proxy_trust  # the client's address for the audit line of a re-issued cookie
        self._variant = f"{self.mode}:{route.mount}"

    def declare(self, access: Access, body: bytes) -> bytes:
        return body

    def variant(self, access: Access) -> str:
        return self._variant

    def rewriter(self, access: Access) -> RewriteUri:
        return make_uri_rewriter(manifest_origin_url=access.origin_url, route=self.route, token_param=None)

    def slot_tokens(self, manifest: PreparedManifest, access: Access) -> dict[Slot, str]:
        return same_token(access.credential)  # no slot is written; a CDN writer around this one may add its own

    def render(self, manifest: PreparedManifest, access: Access) -> bytes:
        return manifest.render(self.slot_tokens(manifest, access))

    def cookies(self, access: Access, manifest: PreparedManifest | None) -> list[str]:
        """Hand the cookie out on first use, and re-issue it before it expires (to the cap where it must last)."""
        source = access.incoming.found.source
        if source == "path":
            return []  # a path token carries itself
        sessions, now, grant = self.sessions, access.now, access.grant
        ends = grant.session_ends_at
        until_cap = ends is not None and self.minter.lasts_the_session(manifest)
        lasts = grant.expires_at - now > sessions.token_ttl_seconds / 2 and (
            not until_cap or grant.expires_at >= (ends or 0)
        )
        if source == "cookie" and lasts:
            return []  # plenty of life left (and already until the cap where it must be)
        token = access.credential
        expires_at = grant.expires_at
        if ends is not None and (source == "cookie" or grant.scope is not Scope.ALL or until_cap):
            # A session token: mint the cookie's own (opening everything under the prefix), never past the cap.
            expires_at = ends if until_cap else min(int(now) + sessions.token_ttl_seconds, ends)
            renewed = dataclasses.replace(grant, scope=Scope.ALL, expires_at=expires_at, key_id=None)
            token = self.minter.mint(renewed)
            client = client_address(access.incoming.scope, self.proxy_trust)
            token_issued(
                "token_renewed", renewed, key_id=self.minter.keys.signing_key.key_id, client=client, via="cookie"
            )
        return [
            set_cookie(
                sessions.cookie_name,
                token,
                path=grant.path_prefixes[0],
                expires_at=expires_at,
                now=now,
                secure=not is_plain_http_localhost(access.incoming.scope),
                same_site=sessions.cookie_same_site,
                partitioned=sessions.cookie_partitioned,
            )
        ]


class HybridWriter(CookieWriter):
    """The master URL's token is exchanged for the cookie on first use (`cookies` hands it out then)."""

    mode = "hybrid"
