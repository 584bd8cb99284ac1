"""Version 2 of the native token: compact session tokens, path-bound prefixes, version 1 still verified."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.dev.bench import session_tokens
from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.manifests.template import Slot
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing, b64url_decode, key_fingerprint
from gateway.tokens.native import TokenVerifier, sign_grant, verify_signature, verify_token

RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
FAR = 4_000_000_000
NOW = 1_800_000_000
SEGMENT = "/vod/title-9000/v360/seg_001.ts"
# Signed by the version-1 encoder (commit b53b386) with RING: a media token with every session field, and
# a two-prefix token with a not-before. They must keep verifying while such tokens are in circulation.
V1_SESSION_MEDIA = "AW4CazHuaygAAQ52b2QvdGl0bGUtOTAwMAQgywBxCQhBYkNkRWZHaAZ1LXBhaWTuaygAu3MQZOGHDkg7aO5BNI_0vQ"
V1_TWO_PREFIXES = "AQECazHuaygAgLzBlgsCBXZvZC9hBXZvZC9igsadtuSKAy1H39P847Ufbw"


def test_version_1_tokens_still_verify_and_version_2_is_issued() -> None:
    media = verify_signature(V1_SESSION_MEDIA, RING)
    assert media == Grant(
        ("/vod/title-9000/",),
        FAR,
        client_network=ipaddress.ip_network("203.0.113.9/32"),
        session_id="AbCdEfGh",
        user_id="u-paid",
        scope=Scope.MEDIA,
        session_ends_at=FAR,
    )
    assert media.key_id == "k1" and not media.path_bound
    assert verify_signature(V1_TWO_PREFIXES, RING) == Grant(("/vod/a/", "/vod/b/"), FAR, not_before=1_000_000_000)
    assert b64url_decode(sign_grant(media, RING))[0] >> 4 == 2
    tampered = V1_SESSION_MEDIA[:-3] + ("A" if V1_SESSION_MEDIA[-3] != "A" else "B") + V1_SESSION_MEDIA[-2:]
    with pytest.raises(TokenDenied) as info:
        verify_signature(tampered, RING)
    assert info.value.reason is Denial.BAD_SIGNATURE


ids = st.one_of(st.none(), st.text(min_size=1, max_size=20).filter(lambda t: len(t.encode()) <= 128))


@given(
    expires=st.integers(2, FAR),
    ends_offset=st.one_of(st.none(), st.integers(-1000, 10**6)),
    nbf_back=st.one_of(st.none(), st.integers(1, 10**5)),
    session=ids,
    user=ids,
    scope=st.sampled_from(Scope),
    network=st.sampled_from([None, "10.0.0.0/8", "203.0.113.9/32", "0.0.0.0/0", "2001:db8::/64", "::1/128"]),
    path_bound=st.booleans(),
)
def test_every_grant_round_trips(
    expires: int,
    ends_offset: int | None,
    nbf_back: int | None,
    session: str | None,
    user: str | None,
    scope: Scope,
    network: str | None,
    path_bound: bool,
) -> None:
    ends = None if ends_offset is None else min(max(1, expires + ends_offset), 2**32 - 1)
    original = Grant(
        ("/vod/title-9000/",),
        expires,
        not_before=None if nbf_back is None else max(0, expires - nbf_back),
        client_network=ipaddress.ip_network(network) if network else None,
        session_id=session,
        user_id=user,
        scope=scope,
        session_ends_at=ends,
    )
    decoded = verify_signature(sign_grant(original, RING, path_bound=path_bound), RING, SEGMENT)
    assert decoded == original and decoded.path_bound is path_bound


@pytest.mark.parametrize("network", [None, "203.0.113.9/32", "2001:db8:1:2::/64"])
@pytest.mark.parametrize("reloaded", [True, False])
def test_a_sessions_playlist_and_media_tokens_fit_in_64_characters(network: str | None, reloaded: bool) -> None:
    tokens = session_tokens(network, reloaded=reloaded)  # what `gateway bench` reports
    assert len(tokens[Slot.PLAYLIST]) <= 64 and len(tokens[Slot.MEDIA]) <= 58, tokens


def test_a_path_bound_token_opens_only_the_prefix_its_path_carries() -> None:
    token = sign_grant(Grant(("/vod/title-9000/",), NOW + 60, scope=Scope.MEDIA), RING, path_bound=True)
    verifier = TokenVerifier(RING)

    def verify(path: str) -> Grant:
        checked = normalise_path(path.encode())
        return verifier.verify(token, path=checked, client_ip=None, needed_scope=Scope.MEDIA, now=NOW)

    assert verify(SEGMENT).path_prefixes == ("/vod/title-9000/",)
    for elsewhere in ("/vod/title-9001/v360/seg_001.ts", "/vod/title-900/seg.ts", "/live/title-9000/seg.ts"):
        with pytest.raises(TokenDenied) as info:  # after a cached success too: the MAC covers the prefix
            verify(elsewhere)
        assert info.value.reason is Denial.BAD_SIGNATURE, elsewhere
    with pytest.raises(TokenDenied) as info:
        verify("/vod/title-9000")  # not below the prefix: no signature can match
    assert info.value.reason is Denial.BAD_SIGNATURE
    cold = normalise_path(b"/vod/title-9001/seg.ts")
    with pytest.raises(TokenDenied) as info:
        verify_token(token, RING, path=cold, client_ip=None, needed_scope=Scope.MEDIA, now=NOW)
    assert info.value.reason is Denial.BAD_SIGNATURE
    with pytest.raises(TokenDenied) as info:
        verify_signature(token, RING)  # no path at all
    assert info.value.reason is Denial.MALFORMED


def test_the_ip_scope_session_and_expiry_of_a_path_bound_token_are_checked() -> None:
    grant = Grant(
        ("/vod/title-9000/",),
        NOW + 60,
        client_network=ipaddress.ip_network("203.0.113.9/32"),
        session_id="AbCdEfGh",
        scope=Scope.MEDIA,
        session_ends_at=NOW + 3600,
    )
    token = sign_grant(grant, RING, path_bound=True)
    path = normalise_path(SEGMENT.encode())

    def denial(**facts: object) -> Denial:
        arguments: dict[str, object] = {
            "client_ip": ipaddress.ip_address("203.0.113.9"),
            "now": NOW,
            "needed_scope": Scope.MEDIA,
        }
        arguments.update(facts)
        with pytest.raises(TokenDenied) as info:
            verify_token(token, RING, path=path, **arguments)  # type: ignore[arg-type]
        return info.value.reason

    assert (
        verify_token(
            token, RING, path=path, client_ip=ipaddress.ip_address("203.0.113.9"), needed_scope=Scope.MEDIA, now=NOW
        ).session_id
        == "AbCdEfGh"
    )
    assert denial(client_ip=ipaddress.ip_address("203.0.113.10")) is Denial.IP
    assert denial(now=NOW + 120) is Denial.EXPIRED
    assert denial(needed_scope=Scope.PLAYLIST) is Denial.SCOPE


def test_a_ring_whose_key_ids_share_a_fingerprint_is_refused() -> None:
    seen: dict[bytes, str] = {}
    for number in range(100_000):  # 2 bytes: a clash among a few hundred ids is likely
        kid = f"k{number}"
        clash = seen.setdefault(key_fingerprint(kid), kid)
        if clash != kid:
            break
    with pytest.raises(ConfigError, match="share a token fingerprint"):
        KeyRing((HmacKey(clash, b"\x01" * 32),), retired=frozenset({kid}))
