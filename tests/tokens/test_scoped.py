from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.manifests.template import PreparedManifest, Slot
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant, verify_signature
from gateway.tokens.scoped import ScopedTokenMinter

RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
NOW = 1_800_000_000
RELOADED = PreparedManifest(chunks=("a", "b"), slots=(Slot.MEDIA,), reloaded=True)  # live, EVENT, dynamic MPD
LOADED_ONCE = PreparedManifest(chunks=("a", "b"), slots=(Slot.MEDIA,), reloaded=False)  # master, VOD, static


@given(ttl=st.integers(2, 3600), offset=st.floats(0, 10_000, allow_nan=False))
def test_media_tokens_live_at_least_the_ttl_and_at_most_one_and_a_half(ttl: int, offset: float) -> None:
    minter = ScopedTokenMinter(RING, media_ttl_seconds=ttl)
    now = NOW + offset
    life = minter.media_expiry(now, 2**31, reloaded=True) - now
    assert ttl - 1 < life <= ttl + minter.bucket_seconds  # whole seconds: at least the TTL, bucket-rounded
    assert minter.media_expiry(now, int(now) + 1, reloaded=True) == int(now) + 1  # never past the session cap


@given(ttl=st.integers(2, 3600), offset=st.floats(0, 10_000, allow_nan=False), cap=st.integers(1, 86_400))
def test_media_tokens_in_a_manifest_loaded_once_live_until_the_session_cap(ttl: int, offset: float, cap: int) -> None:
    minter = ScopedTokenMinter(RING, media_ttl_seconds=ttl)
    ends = NOW + int(offset) + cap
    assert minter.media_expiry(NOW + offset, ends, reloaded=False) == ends


def test_slot_tokens_for_a_session_grant() -> None:
    minter = ScopedTokenMinter(RING, media_ttl_seconds=300)
    session = Grant(("/vod/t/",), NOW + 300, session_id="s", user_id="u", scope=Scope.ALL, session_ends_at=NOW + 3600)
    tokens = minter.slot_tokens(session, sign_grant(session, RING), RELOADED, now=NOW)
    playlist, media = (verify_signature(tokens[slot], RING, "/vod/t/v1/a.ts") for slot in (Slot.PLAYLIST, Slot.MEDIA))
    assert playlist.scope is Scope.PLAYLIST and playlist.expires_at == NOW + 3600
    assert media.scope is Scope.MEDIA and NOW + 300 <= media.expires_at <= NOW + 450
    assert playlist.path_prefixes == media.path_prefixes == ("/vod/t/",) and playlist.path_bound and media.path_bound
    assert playlist.user_id == "u" and media.user_id is None  # only a refresh needs it; media cannot refresh
    for slot in (Slot.PLAYLIST, Slot.MEDIA):  # the request path carries the prefix; the MAC covers it
        with pytest.raises(TokenDenied) as info:
            verify_signature(tokens[slot], RING, "/vod/other/v1/a.ts")
        assert info.value.reason is Denial.BAD_SIGNATURE
    # A media playlist requested with the playlist token writes that same token on rendition reports.
    again = minter.slot_tokens(playlist, tokens[Slot.PLAYLIST], RELOADED, now=NOW + 1000)
    assert again[Slot.PLAYLIST] == tokens[Slot.PLAYLIST]


def test_a_manifest_loaded_once_gets_a_media_token_until_the_session_cap() -> None:
    minter = ScopedTokenMinter(RING, media_ttl_seconds=300)
    session = Grant(("/vod/t/",), NOW + 300, session_id="s", scope=Scope.ALL, session_ends_at=NOW + 3 * 3600)
    tokens = minter.slot_tokens(session, sign_grant(session, RING), LOADED_ONCE, now=NOW)
    media = verify_signature(tokens[Slot.MEDIA], RING, "/vod/t/a.ts")
    assert media.scope is Scope.MEDIA and media.expires_at == NOW + 3 * 3600
    assert media.session_id == "s" and media.path_prefixes == ("/vod/t/",)
    # Every response of the session writes the same string: signed once, stable URIs.
    later = minter.slot_tokens(session, sign_grant(session, RING), LOADED_ONCE, now=NOW + 1234)
    assert later[Slot.MEDIA] == tokens[Slot.MEDIA]


def test_plain_grants_pass_through_unchanged() -> None:
    grant = Grant(("/vod/t/",), NOW + 60)
    token = sign_grant(grant, RING)
    assert ScopedTokenMinter(RING, media_ttl_seconds=10).slot_tokens(grant, token, LOADED_ONCE, now=NOW) == {
        Slot.PLAYLIST: token,
        Slot.MEDIA: token,
    }
