"""Scoped tokens: what the gateway writes into the playlists it serves, so sessions outlive a short TTL.

A session grant (one with `session_ends_at`) yields two derived tokens per playlist response:
- PLAYLIST-scoped, valid until the session's hard cap: variant and rendition URLs are fixed when the
  master loads and reloaded for hours, so their token must live as long as the session may;
- MEDIA-scoped: segments, parts, keys and init sections. Its life follows what the player can refresh,
  read from the manifest it is written into (`PreparedManifest.renews_its_uris`), never from the URL:
  * in a manifest the player reloads (live and EVENT playlists, dynamic MPDs) it is short and rolls
    forward with every reload: its expiry (now + TTL) is rounded up to a bucket boundary, so the same URI
    string repeats across reloads within a bucket (stable URLs for caches, players and LL-HLS delta
    updates) and signing happens at most once per bucket, never per URI;
  * in a manifest loaded once (a master, a VOD playlist with #EXT-X-ENDLIST or PLAYLIST-TYPE:VOD, a static
    MPD) nothing would ever replace it, so it lives until the session's hard cap, like the playlist token;
    so does a dynamic MPD with PatchLocation: a player applying patches may keep its URIs (shaka re-fetches
    an init section with the token of the first MPD); what a patch restates rolls like a reload's.
    A player that refreshes nothing (shaka, dash.js, Safari, smart TVs, ffmpeg) then plays a film to its
    end and seeks back hours later. The session still bounds it: cap, revocation, IP binding.
A plain grant (no session cap, e.g. from `gateway sign`) is passed through as is.

Both derived tokens are path-bound (`native.sign_grant`): every URI a playlist names lies under the
title's prefix, so the request path carries it and the token only says how many segments it spans. The
media token leaves the user id out (only a refresh needs it, and a media token cannot refresh): a
session's media token is ~50 characters, its playlist token ~55 with a short user id.
"""

from __future__ import annotations

import dataclasses
import math

from gateway.manifests.template import PreparedManifest, Slot
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import KeyRing
from gateway.tokens.native import sign_grant


class ScopedTokenMinter:
    def __init__(self, keys: KeyRing, *, media_ttl_seconds: float, cache_size: int = 65536) -> None:
        if media_ttl_seconds <= 0:
            raise ValueError("media_ttl_seconds must be positive")
        self.keys = keys
        self.media_ttl_seconds = media_ttl_seconds
        # Half the TTL: tokens minted within one bucket are the same string (stable URIs across reloads).
        self.bucket_seconds = max(1, int(media_ttl_seconds // 2))
        self._cache_size = cache_size
        self._minted: dict[tuple[Grant, bool], str] = {}

    def mint(self, grant: Grant, *, path_bound: bool = False) -> str:
        token = self._minted.get((grant, path_bound))
        if token is None:
            if len(self._minted) >= self._cache_size:
                self._minted.pop(next(iter(self._minted)))
            token = self._minted[grant, path_bound] = sign_grant(grant, self.keys, path_bound=path_bound)
        return token

    def media_expiry(self, now: float, session_ends_at: int, *, reloaded: bool) -> int:
        """When media credentials written into a manifest expire (`reloaded`: see `PreparedManifest`).

        Loaded once: the session's cap. Reloaded: `now + TTL` rounded up to a bucket boundary, between
        TTL and 1.5 x TTL of life, never past the cap. A player may hold a segment URL for up to a target
        duration (hls.js holds audio back until the matching video segment loads) before using it, so
        every rolling token keeps at least the full TTL.
        """
        if not reloaded:
            return session_ends_at
        bucketed = math.ceil((now + self.media_ttl_seconds) / self.bucket_seconds) * self.bucket_seconds
        return min(int(bucketed), session_ends_at)

    @staticmethod
    def lasts_the_session(manifest: PreparedManifest | None) -> bool:
        """Whether a credential handed out with `manifest` (a cookie) must last until the session's cap.

        True for a manifest the player uses unrenewed for the whole title: a VOD media playlist or a
        static MPD. A master is loaded once too, but says nothing about its playlists: they decide when
        they are served (live ones keep the cookie rolling).
        """
        return manifest is not None and not manifest.reloaded and not manifest.multivariant

    def slot_tokens(self, grant: Grant, token: str, manifest: PreparedManifest, *, now: float) -> dict[Slot, str]:
        """Tokens for `manifest`'s slots, served to a request with `token` (already verified as `grant`)."""
        if grant.session_ends_at is None:
            return {Slot.PLAYLIST: token, Slot.MEDIA: token}
        ends = grant.session_ends_at
        if grant.scope is Scope.PLAYLIST and grant.expires_at >= ends:
            playlist_token = token  # already the long-lived form: reuse it, so reports match variant URLs
        else:
            playlist_token = self.mint(
                dataclasses.replace(grant, scope=Scope.PLAYLIST, expires_at=ends, not_before=None, key_id=None),
                path_bound=len(grant.path_prefixes) == 1,
            )
        media = dataclasses.replace(
            grant,
            scope=Scope.MEDIA,
            expires_at=self.media_expiry(now, ends, reloaded=manifest.renews_its_uris),
            not_before=None,
            user_id=None,
            key_id=None,
        )
        return {Slot.PLAYLIST: playlist_token, Slot.MEDIA: self.mint(media, path_bound=len(grant.path_prefixes) == 1)}
