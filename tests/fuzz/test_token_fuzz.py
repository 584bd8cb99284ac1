"""The token decoder and verifier on mutations of valid tokens: only the exact token is accepted; every
other string is refused with a typed reason (never a crash, never a different grant)."""

from __future__ import annotations

import ipaddress
import string

from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant, Scope, parse_network
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant, verify_token
from tests.fuzz import FUZZ

RING = KeyRing((HmacKey("k2", b"\x02" * 32), HmacKey("k1", b"\x01" * 32)))
NOW = 1_800_000_000
PATH = normalise_path(b"/vod/title-9000/v1/seg_001.ts")
ALPHABET = string.ascii_letters + string.digits + "-_"
REFUSALS = {Denial.MALFORMED, Denial.BAD_SIGNATURE, Denial.UNKNOWN_KEY, Denial.MISSING}  # MISSING: nothing left

grants = st.builds(
    Grant,
    path_prefixes=st.just(("/vod/title-9000/",)),
    expires_at=st.integers(NOW + 1, NOW + 10**6),
    session_id=st.none() | st.text(ALPHABET, min_size=1, max_size=12),
    user_id=st.none() | st.text(ALPHABET, min_size=1, max_size=12),
    client_network=st.none() | st.sampled_from([parse_network("10.0.0.0/8"), parse_network("2001:db8::/64")]),
    scope=st.sampled_from([Scope.ALL, Scope.MEDIA]),
)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Grant, str, str]:
    grant = draw(grants)
    token = sign_grant(grant, RING)
    chars = list(token)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, len(chars) - 1)))
        kind = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "extend", "foreign"]))
        if kind == "replace" and chars:
            chars[at] = draw(st.sampled_from(ALPHABET))
        elif kind == "delete" and chars:
            del chars[at]
        elif kind == "insert":
            chars.insert(at, draw(st.sampled_from(ALPHABET)))
        elif kind == "truncate":
            del chars[at:]
        elif kind == "extend":
            chars += draw(st.text(ALPHABET, min_size=1, max_size=8))
        else:
            chars.insert(at, draw(st.sampled_from("=+/.~% \x00é")))
    return grant, token, "".join(chars)


@FUZZ
@given(mutations())
def test_only_the_exact_token_is_accepted(case: tuple[Grant, str, str]) -> None:
    grant, token, candidate = case
    ip = "10.1.2.3" if grant.client_network and grant.client_network.version == 4 else "2001:db8::1"
    try:
        verified = verify_token(
            candidate,
            RING,
            path=PATH,
            client_ip=ipaddress.ip_address(ip),
            needed_scope=Scope.MEDIA,
            now=NOW,
        )
    except TokenDenied as denied:
        assert candidate != token
        assert denied.reason in REFUSALS, (denied.reason, denied.detail)
        return
    assert candidate == token and verified == grant  # one spelling, one grant
