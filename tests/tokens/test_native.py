from __future__ import annotations

import base64
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant, Scope, parse_network
from gateway.tokens.keys import Ed25519Key, HmacKey, KeyRing, b64url_decode, b64url_encode, parse_key_ring
from gateway.tokens.native import TokenVerifier, inspect_token, sign_grant, verify_signature, verify_token

NOW = 1_800_000_000
PREFIX = "/vod/title-9000/"
SEGMENT = normalise_path(b"/vod/title-9000/v360/seg_001.ts")
PLAYLIST = normalise_path(b"/vod/title-9000/master.m3u8")


def grant(**changes: object) -> Grant:
    fields: dict[str, object] = {"path_prefixes": (PREFIX,), "expires_at": NOW + 60}
    fields.update(changes)
    return Grant(**fields)  # type: ignore[arg-type]


def check(token: str, keys: KeyRing, *, path: object = SEGMENT, ip: str | None = None, **kw: object) -> Grant:
    return verify_token(
        token,
        keys,
        path=path,  # type: ignore[arg-type]
        client_ip=ipaddress.ip_address(ip) if ip else None,
        needed_scope=kw.pop("scope", Scope.MEDIA),  # type: ignore[arg-type]
        now=kw.pop("now", NOW),  # type: ignore[arg-type]
    )


def reason(call: object) -> Denial:
    with pytest.raises(TokenDenied) as info:
        call()  # type: ignore[operator]
    return info.value.reason


def test_round_trip_returns_the_signed_grant(key_ring: KeyRing) -> None:
    original = grant(session_id="s-1", user_id="u-7", client_network=parse_network("10.0.0.0/8"))
    token = sign_grant(original, key_ring)
    assert check(token, key_ring, ip="10.1.2.3") == original


def test_token_for_one_prefix_is_compact(key_ring: KeyRing) -> None:
    assert len(sign_grant(grant(), key_ring)) <= 64
    assert len(sign_grant(grant(session_id="Ab3dEf9h"), key_ring)) <= 72


def test_signs_with_the_newest_key_and_verifies_with_older_ones(key_ring: KeyRing) -> None:
    token = sign_grant(grant(), key_ring)
    assert inspect_token(token, keys=key_ring).key_id == "k2" and str(inspect_token(token).key_id).startswith("#")
    old_ring = KeyRing((HmacKey("k1", b"\x01" * 32),))
    old_token = sign_grant(grant(), old_ring)
    assert check(old_token, key_ring).key_id == "k1"  # rotation: k2 is new, k1 still verifies


def test_retired_and_unknown_keys_are_refused_by_name(key_ring: KeyRing) -> None:
    token = sign_grant(grant(), KeyRing((HmacKey("k1", b"\x01" * 32),)))
    retired = KeyRing(key_ring.keys, retired=frozenset({"k1"}))
    with pytest.raises(TokenDenied) as info:
        check(token, retired)
    assert info.value.reason is Denial.UNKNOWN_KEY and "retired" in info.value.detail
    stranger = sign_grant(grant(), KeyRing((HmacKey("zz", b"\x09" * 32),)))
    assert reason(lambda: check(stranger, key_ring)) is Denial.UNKNOWN_KEY


def test_same_key_id_with_another_secret_is_a_bad_signature(key_ring: KeyRing) -> None:
    forged = sign_grant(grant(), KeyRing((HmacKey("k2", b"\x07" * 32),)))
    assert reason(lambda: check(forged, key_ring)) is Denial.BAD_SIGNATURE


@given(st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    keys = KeyRing((HmacKey("k1", b"\x01" * 32),))
    raw = bytearray(b64url_decode(sign_grant(grant(session_id="abc"), keys)))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    tampered = b64url_encode(bytes(raw))
    with pytest.raises(TokenDenied) as info:
        check(tampered, keys)
    assert info.value.reason in {Denial.BAD_SIGNATURE, Denial.MALFORMED, Denial.UNKNOWN_KEY}


@given(st.text(max_size=300))
def test_garbage_tokens_are_malformed_never_a_crash(garbage: str) -> None:
    keys = KeyRing((HmacKey("k1", b"\x01" * 32),))
    with pytest.raises(TokenDenied) as info:
        check(garbage, keys)
    assert info.value.reason in {Denial.MISSING, Denial.MALFORMED, Denial.UNKNOWN_KEY, Denial.BAD_SIGNATURE}


def test_huge_token_is_malformed(key_ring: KeyRing) -> None:
    assert reason(lambda: check("A" * 100_000, key_ring)) is Denial.MALFORMED


def test_expiry_with_leeway(key_ring: KeyRing) -> None:
    token = sign_grant(grant(expires_at=NOW), key_ring)
    assert check(token, key_ring, now=NOW + 5)  # inside the default 5 s skew leeway
    with pytest.raises(TokenDenied) as info:
        check(token, key_ring, now=NOW + 6)
    assert info.value.reason is Denial.EXPIRED
    assert info.value.detail == f"token expired at {NOW}, now {NOW + 6}"


def test_not_yet_valid(key_ring: KeyRing) -> None:
    token = sign_grant(grant(not_before=NOW + 30), key_ring)
    assert reason(lambda: check(token, key_ring)) is Denial.NOT_YET_VALID
    assert check(token, key_ring, now=NOW + 26)


def test_session_cap_ends_every_token_derived_from_it(key_ring: KeyRing) -> None:
    token = sign_grant(grant(expires_at=NOW + 600, session_ends_at=NOW + 100), key_ring)
    assert check(token, key_ring, now=NOW + 100)
    assert reason(lambda: check(token, key_ring, now=NOW + 106)) is Denial.EXPIRED


def test_acl_is_whole_segments(key_ring: KeyRing) -> None:
    token = sign_grant(grant(), key_ring)
    sibling = normalise_path(b"/vod/title-90001/seg.ts")
    assert reason(lambda: check(token, key_ring, path=sibling)) is Denial.ACL
    assert reason(lambda: check(token, key_ring, path=normalise_path(b"/vod/title-9000"))) is Denial.ACL


@pytest.mark.parametrize(
    ("network", "inside", "outside"),
    [
        ("203.0.113.7", "203.0.113.7", "203.0.113.8"),
        ("198.51.100.0/24", "198.51.100.200", "198.51.101.1"),
        ("2001:db8:1:2::/64", "2001:db8:1:2:ffff::1", "2001:db8:1:3::1"),
        ("2001:db8::1", "2001:db8::1", "2001:db8::2"),
    ],
)
def test_ip_binding_v4_and_v6(key_ring: KeyRing, network: str, inside: str, outside: str) -> None:
    token = sign_grant(grant(client_network=parse_network(network)), key_ring)
    assert check(token, key_ring, ip=inside)
    with pytest.raises(TokenDenied) as info:
        check(token, key_ring, ip=outside)
    assert info.value.reason is Denial.IP and info.value.values["client_ip"] == outside
    assert reason(lambda: check(token, key_ring)) is Denial.IP  # no client address known: refuse


def test_ipv4_mapped_ipv6_client_matches_an_ipv4_grant(key_ring: KeyRing) -> None:
    token = sign_grant(grant(client_network=parse_network("192.0.2.0/24")), key_ring)
    assert check(token, key_ring, ip="::ffff:192.0.2.9")


def test_scopes(key_ring: KeyRing) -> None:
    media = sign_grant(grant(scope=Scope.MEDIA), key_ring)
    playlist = sign_grant(grant(scope=Scope.PLAYLIST), key_ring)
    everything = sign_grant(grant(), key_ring)
    assert reason(lambda: check(media, key_ring, path=PLAYLIST, scope=Scope.PLAYLIST)) is Denial.SCOPE
    assert reason(lambda: check(playlist, key_ring)) is Denial.SCOPE
    assert check(playlist, key_ring, path=PLAYLIST, scope=Scope.PLAYLIST)
    assert check(everything, key_ring) and check(everything, key_ring, path=PLAYLIST, scope=Scope.PLAYLIST)


def test_ed25519_keys_sign_and_verify_and_public_keys_only_verify() -> None:
    ring = parse_key_ring("e1:ed25519:" + b64url_encode(b"\x05" * 32))
    token = sign_grant(grant(), ring)
    assert len(b64url_decode(token)) > 64
    key = ring.keys[0]
    assert isinstance(key, Ed25519Key)
    public_only = parse_key_ring("e1:ed25519-pub:" + b64url_encode(key.public_bytes()))
    assert check(token, public_only)
    hmac_same_id = KeyRing((HmacKey("e1", b"\x05" * 32),))
    assert reason(lambda: check(token, hmac_same_id)) is Denial.BAD_SIGNATURE  # algorithm comes from the key


def test_verifier_cache_still_checks_claims_per_request(key_ring: KeyRing) -> None:
    verifier = TokenVerifier(key_ring)
    token = sign_grant(grant(), key_ring)
    kwargs = {"client_ip": None, "needed_scope": Scope.MEDIA}
    assert verifier.verify(token, path=SEGMENT, now=NOW, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TokenDenied):
        verifier.verify(token, path=SEGMENT, now=NOW + 3600, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TokenDenied):
        verifier.verify(token, path=normalise_path(b"/vod/other/x.ts"), now=NOW, **kwargs)  # type: ignore[arg-type]


@given(
    prefixes=st.lists(
        st.from_regex(r"/[a-z0-9_-]{1,12}(/[a-z0-9_.-]{0,8}[a-z0-9_-])?/", fullmatch=True),
        min_size=1,
        max_size=3,
    ),
    ttl=st.integers(1, 10**6),
    session=st.none() | st.text(min_size=1, max_size=20),
    v6=st.booleans(),
    length=st.integers(0, 32),
)
def test_property_round_trip(prefixes: list[str], ttl: int, session: str | None, v6: bool, length: int) -> None:
    keys = KeyRing((HmacKey("k1", b"\x01" * 32),))
    network = parse_network("2001:db8::/32" if v6 else "10.0.0.0/8") if length else None
    original = Grant(tuple(prefixes), NOW + ttl, client_network=network, session_id=session, user_id=session)
    assert verify_signature(sign_grant(original, keys), keys) == original


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@given(session=st.text("abcdefgh", min_size=0, max_size=9), flip=st.integers(1, 15))
def test_one_canonical_spelling_per_token(session: str, flip: int) -> None:
    """A base64url tail character has unused bits that decoders ignore: every other spelling is refused."""
    key_ring = KeyRing((HmacKey("k1", b"\x01" * 32),))
    token = sign_grant(grant(session_id=session or None), key_ring)
    assert check(token, key_ring).path_prefixes == (PREFIX,)
    unused = {2: 0b1111, 3: 0b11}.get(len(token) % 4)
    if unused is None:
        return  # no spare bits in this length
    other = token[:-1] + ALPHABET[ALPHABET.index(token[-1]) ^ (flip & unused or unused)]
    assert other != token and b64url_decode(token) == base64.urlsafe_b64decode(other + "=" * (-len(other) % 4))
    assert reason(lambda: check(other, key_ring)) is Denial.MALFORMED


def test_b64url_decode_is_strict_and_canonical() -> None:
    assert b64url_decode("AA") == b"\x00" and b64url_decode("AAA") == b"\x00\x00"
    for non_canonical in ("AB", "AP", "AAB", "AAD"):
        with pytest.raises(ValueError, match="canonical"):
            b64url_decode(non_canonical)
    for data in (b"", b"\x01", b"\x01\x02", b"\x01\x02\x03", bytes(range(256))):
        assert b64url_decode(b64url_encode(data)) == data
