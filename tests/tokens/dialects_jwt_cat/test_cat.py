"""CTA-5007 CAT: the worked example, the contract (round trip, tamper, expiry, acl, ip, rotation, alg), renewal."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cbor2
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, Denial
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import Dialect, EdgeRequest
from gateway.tokens.dialects.cat import from_config
from gateway.tokens.dialects.support import cat_claims as c
from gateway.tokens.dialects.support.cat_cbor import Tagged, encode
from gateway.tokens.dialects.support.cat_cose import HmacCatKey
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import b64url_decode, b64url_encode
from tests.tokens.dialects_jwt_cat.support import (
    CAT_KEY_HEX,
    DOC_TOKEN,
    EC_P256_PRIVATE_PEM,
    NOW,
    cat_dialect,
    denial,
    doc_grant,
    grants,
    inside,
    outside,
)
from tests.tokens.dialects_jwt_cat.support import (
    cat_grant as grant,
)

KEY = bytes.fromhex(CAT_KEY_HEX)
CTI = bytes.fromhex("0123456789abcdef0123456789abcdef")
DOC_PAYLOAD = (
    "aa016f676174657761792e6578616d706c650269757365722d31323334041a77359400051a6955b900061a6955b90007500123"
    "456789abcdef0123456789abcdef19013601190138a300a10065687474707301a1006f63646e2e6578616d706c652e636f6d03"
    "a1016c2f766f642f6d6f766965312f19013982634745546448454144190143a3000001187802183c"
)
DOC_TAG = "25984b44ec5345b299642346043161372efdbd53a29c8c58dbfec9903c8ddf78"
AKAMAI_TOKEN = (
    "2D3RhEOhAQWhBFBha2FtYWlfa2V5X2hzMjU2U6MEGmfXP_YGGmfXQAsFGmfXQAtYINTT_KlOyhaV6NaSxFXkqJWfBagSkPkem10dysoA-C0w"
)
TV4_TOKEN = (
    "2D3RhFGiAQUETFN5bW1ldHJpYzI1NqBY-qcBZ2V5ZXZpbm4CeF41NmE1OGQ4OS0yYWJjLTRmZGMtOTM0Yy1jNzk5ODk0ZGIyNjc6NzEy"
    "ZGUzYWJmMjgyMDMyYzdjMjY6OGEzMTg0M2YtNGIxZi00ODY4LWIyMzQtNjQxNTI2ZDAxMWU4BBpoMBvFBRpoMBuJBhpoMBuJB1gkYzdh"
    "NDlmZmQtY2M3OS00Y2U1LTkzMzEtNmIxMjZiY2RkMWRkGQFDpQABARg8AhgeA3dDVEEtQ29tbW9uLUFjY2Vzcy1Ub2tlbgWEZlNlY3Vy"
    "ZXJEb21haW49LnR2NHBsYXkuc2VmcGF0aD0vbVNhbWVTaXRlPU5vbmVYICmzyUJdc5QJKHDrqakTajuSnARci7xvCaAeb212P3Lr"
)
LEGACY_TAG259_TOKEN = (
    "2D3RhEOhAQW5AAFhNExTeW1tZXRyaWMyNTZYO9kBA6IBZ2V5ZXZpbm4ZATjZAQOjANkBA6EAZWh0dHBzA9kBA6EBaC9jb250ZW50CNkBA6"
    "EAZS5tM3U4WCCD42NQN46M44nvyg4eD4tKUo2+spMlXhtOHW3IiUFiXg=="
)
SEGMENT = "https://cdn.example.com/vod/movie1/seg_001.ts"


CAT = cat_dialect()
ES256 = cat_dialect(keys=[{"kid": "es256-key-1", "private_key": EC_P256_PRIVATE_PEM}])


def via_header(token: str, url: str = SEGMENT, **kw: Any) -> EdgeRequest:
    return EdgeRequest(url=url, headers={"CTA-Common-Access-Token": token}, **kw)


# --- the worked example ---------------------------------------------------------------------------


def test_worked_example_reproduces_payload_mac_and_token_exactly() -> None:
    claims = CAT.claims_for(doc_grant(), issued_at=1767225600, cti=CTI)
    assert encode(claims).hex() == DOC_PAYLOAD
    assert (
        encode(["MAC0", bytes.fromhex("a10105"), b"", bytes.fromhex(DOC_PAYLOAD)]).hex()
        == "84644d41433043a1010540588e" + DOC_PAYLOAD
    )
    assert CAT.issue(doc_grant(), issued_at=1767225600, cti=CTI) == DOC_TOKEN
    # cbor2 (not ours) reads the envelope, and the MAC recomputed over its re-encoding matches.
    envelope = cbor2.loads(b64url_decode(DOC_TOKEN))
    assert envelope.tag == 61 and envelope.value.tag == 17
    protected, unprotected, payload, tag = envelope.value.value
    assert cbor2.loads(protected) == {1: 5} and dict(unprotected) == {4: b"Symmetric256"}
    assert tag.hex() == DOC_TAG
    assert hmac.new(KEY, cbor2.dumps(["MAC0", protected, b"", payload]), hashlib.sha256).digest() == tag


def test_worked_example_verifies_and_only_on_its_prefix_and_methods() -> None:
    verified = CAT.verify_token(via_header(DOC_TOKEN), now=1767225700)
    assert verified.grant == doc_grant()
    assert verified.claims[c.CATR] == {0: 0, 1: 120, 2: 60}
    assert (
        denial(lambda: CAT.verify(via_header(DOC_TOKEN, "https://cdn.example.com/vod/movie2/a.ts"), now=1767225700))
        is Denial.ACL
    )
    post = via_header(DOC_TOKEN, method="POST")
    assert denial(lambda: CAT.verify(post, now=1767225700)) is Denial.SCOPE


def test_akamai_vector_macs_and_is_refused_on_time() -> None:
    akamai = cat_dialect(keys=[{"kid": "akamai_key_hs256", "secret": CAT_KEY_HEX}], issuer=None)
    # exp (1742159862) precedes nbf = iat (1742159883): never valid, but the MAC checks out first.
    assert denial(lambda: akamai.verify(via_header(AKAMAI_TOKEN), now=1742159850)) is Denial.NOT_YET_VALID
    assert denial(lambda: akamai.verify(via_header(AKAMAI_TOKEN), now=1742159890)) is Denial.EXPIRED
    wrong_key = cat_dialect(keys=[{"kid": "akamai_key_hs256", "secret": "00" * 32}], issuer=None)
    assert denial(lambda: wrong_key.verify(via_header(AKAMAI_TOKEN), now=1742159850)) is Denial.BAD_SIGNATURE


def test_tv4_vector_kid_in_protected_header_and_cookie_renewal() -> None:
    tv4 = cat_dialect(issuer=None, accepted_issuers=["eyevinn"])
    request = EdgeRequest(url="https://vod.tv4play.se/a/b.m3u8", cookies={"CTA-Common-Access-Token": TV4_TOKEN})
    verified = tv4.verify_token(request, now=1747983290)
    assert verified.grant.path_prefixes == ("/",) and verified.channel == "cookie"
    renewed = tv4.renew(verified, now=1747983290)
    assert renewed is not None and renewed.delivered_by == "cookie" and renewed.status == 200
    ((name, value),) = renewed.headers
    assert name == "Set-Cookie"
    assert value == f"CTA-Common-Access-Token={renewed.token}; Secure; Domain=.tv4play.se; path=/; SameSite=None"
    again = tv4.verify_token(
        EdgeRequest(url=request.url, cookies={"cta-common-access-token": renewed.token}), now=1747983300
    )
    assert again.claims[c.EXP] == 1747983290 + 60 and again.claims[c.CTI] != verified.claims[c.CTI]
    assert again.claims[c.CATR] == verified.claims[c.CATR]
    assert tv4.renew(verified, now=1747983241) is None  # not yet inside the 30 s deadline window


def test_legacy_tag259_token_is_refused_and_its_payload_would_be_too() -> None:
    assert denial(lambda: CAT.verify(via_header(LEGACY_TAG259_TOKEN), now=NOW)) is Denial.UNKNOWN_KEY
    payload = cbor2.loads(base64.b64decode(LEGACY_TAG259_TOKEN)).value.value[2]
    from gateway.tokens.dialects.support.cat_cbor import CborError, decode

    with pytest.raises(CborError, match="tag 259"):
        decode(payload)


# --- the contract ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    grants(),
    st.none() | st.text("abc-_012", min_size=1, max_size=12),
    st.sampled_from(list(Scope)),
    st.sampled_from(["header", "cookie", "query"]),
)
def test_round_trip_returns_the_grant(original: Grant, session: str | None, scope: Scope, delivery: str) -> None:
    ends_at = original.expires_at + 3600 if session else None
    original = dataclasses.replace(original, session_id=session, scope=scope, session_ends_at=ends_at)
    dialect = cat_dialect(delivery=delivery)
    credentials = dialect.sign(original)
    token = credentials.token
    assert token is not None
    url = f"https://cdn.example.com{quote(original.path_prefixes[0])}seg%201.ts"
    if delivery == "query":
        assert credentials.query == (("cat", token),)
        request = EdgeRequest(url=f"{url}?a=1&{credentials.query_string()}", client_ip=inside(original.client_network))
    elif delivery == "cookie":
        (cookie,) = credentials.cookies
        # the Path a browser matches against the request path: percent-encoded, like the URL
        assert cookie.path == encoded_prefix(original.path_prefixes[0]) and cookie.expires_at == original.expires_at
        request = EdgeRequest(url=url, cookies={cookie.name: cookie.value}, client_ip=inside(original.client_network))
    else:
        assert credentials.headers == (("CTA-Common-Access-Token", token),)
        request = via_header(token, url, client_ip=inside(original.client_network))
    now = float(original.not_before if original.not_before is not None else NOW)
    verified = dialect.verify_token(request, now=now)
    assert verified.grant == original and verified.grant.key_id == "Symmetric256"
    assert verified.channel == delivery
    assert denial(lambda: dialect.verify(request, now=original.expires_at)) is Denial.EXPIRED
    if original.client_network is not None:
        wrong = dataclasses.replace(request, client_ip=outside(original.client_network))
        assert denial(lambda: dialect.verify(wrong, now=now)) is Denial.IP


@pytest.mark.parametrize(
    "path",
    [
        "/vod/movie2/seg.ts",
        "/vod/movie10/seg.ts",
        "/vod/movie1/../movie2/seg.ts",
        "/vod/movie1/%2e%2e/movie2/seg.ts",
        "/vod/movie1%2f..%2fmovie2/seg.ts",
        "/vod//movie1/seg.ts",
        "/vod/movie1",
    ],
)
def test_paths_outside_the_prefix_are_acl(path: str) -> None:
    token = CAT.sign(grant()).token or ""
    assert denial(lambda: CAT.verify(via_header(token, f"https://cdn.example.com{path}"), now=NOW)) is Denial.ACL


def test_scheme_and_host_are_part_of_catu() -> None:
    token = CAT.sign(grant()).token or ""
    for url in ("http://cdn.example.com/vod/movie1/a.ts", "https://evil.example.com/vod/movie1/a.ts"):
        assert denial(lambda u=url: CAT.verify(via_header(token, u), now=NOW)) is Denial.ACL
    assert CAT.verify(via_header(token, "https://CDN.example.com:443/vod/movie1/a.ts"), now=NOW)


def test_catnip_ipv4_ipv6_and_mapped_addresses() -> None:
    v6 = CAT.sign(grant(client_network=ipaddress.ip_network("2001:db8:1234::/48"))).token or ""
    assert CAT.verify(via_header(v6, client_ip=ipaddress.ip_address("2001:db8:1234::9")), now=NOW)
    assert (
        denial(lambda: CAT.verify(via_header(v6, client_ip=ipaddress.ip_address("203.0.113.9")), now=NOW)) is Denial.IP
    )
    assert denial(lambda: CAT.verify(via_header(v6), now=NOW)) is Denial.IP
    v4 = CAT.sign(grant(client_network=ipaddress.ip_network("198.51.100.0/24"))).token or ""
    assert CAT.verify(via_header(v4, client_ip=ipaddress.ip_address("::ffff:198.51.100.7")), now=NOW)


def test_catnip_encodings_full_and_rfc9164_both_verify() -> None:
    network = ipaddress.ip_network("10.20.0.0/16")
    assert c.encode_catnip(network, full_bytes=True) == Tagged(52, [16, bytes([10, 20, 0, 0])])
    assert c.encode_catnip(network, full_bytes=False) == Tagged(52, [16, bytes([10, 20])])
    assert c.encode_catnip(ipaddress.ip_network("10.0.0.1/32"), full_bytes=True) == Tagged(52, bytes([10, 0, 0, 1]))
    trimmed = cat_dialect(catnip_encoding="rfc9164")
    token = trimmed.sign(grant(client_network=network)).token or ""
    assert CAT.verify(via_header(token, client_ip=ipaddress.ip_address("10.20.3.4")), now=NOW).client_network == network


def test_tampering_is_refused() -> None:
    raw = bytearray(b64url_decode(CAT.sign(grant()).token or ""))
    for index in (len(raw) // 2, len(raw) - 1):  # inside the payload, inside the tag
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        reason = denial(lambda f=flipped: CAT.verify(via_header(b64url_encode(bytes(f))), now=NOW))
        assert reason in (Denial.BAD_SIGNATURE, Denial.MALFORMED)
    assert denial(lambda: CAT.verify(via_header(b64url_encode(bytes(raw[:-5]))), now=NOW)) is Denial.MALFORMED
    assert denial(lambda: CAT.verify(via_header("not*base64"), now=NOW)) is Denial.MALFORMED
    assert denial(lambda: CAT.verify(via_header("A" * 5000), now=NOW)) is Denial.MALFORMED
    assert denial(lambda: CAT.verify(EdgeRequest(url=SEGMENT), now=NOW)) is Denial.MISSING


def _mac0(
    claims: dict[Any, Any], *, protected: dict[int, Any], unprotected: dict[int, Any], tag: int = 17, key: bytes = KEY
) -> str:
    prot = cbor2.dumps(protected)
    payload = cbor2.dumps({1: "gateway.example", **claims})  # CAT's configured issuer, unless overridden
    mac = hmac.new(key, cbor2.dumps(["MAC0", prot, b"", payload]), hashlib.sha256).digest()
    return b64url_encode(cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(tag, [prot, unprotected, payload, mac]))))


def test_key_rotation_by_kid() -> None:
    rotated = cat_dialect(keys=[{"kid": "k-2026", "secret": "11" * 32}, {"kid": "Symmetric256", "secret": CAT_KEY_HEX}])
    new = rotated.sign(grant()).token or ""
    assert rotated.verify(via_header(new), now=NOW).key_id == "k-2026"
    assert rotated.verify(via_header(CAT.sign(grant()).token or ""), now=NOW).key_id == "Symmetric256"
    assert denial(lambda: CAT.verify(via_header(new), now=NOW)) is Denial.UNKNOWN_KEY
    no_kid = _mac0({4: NOW + 60}, protected={1: 5}, unprotected={})
    assert denial(lambda: CAT.verify(via_header(no_kid), now=NOW)) is Denial.UNKNOWN_KEY


def test_algorithm_confusion_is_refused() -> None:
    claims = {4: NOW + 60, 312: {3: {1: "/vod/movie1/"}}}
    es_kid = {4: b"es256-key-1"}
    public_raw = ES256.jwks()["keys"][0]["x"].encode()
    cases = [
        _mac0(claims, protected={1: -7}, unprotected={4: b"Symmetric256"}),  # says ES256, HMAC key
        _mac0(claims, protected={1: 5}, unprotected={4: b"Symmetric256"}, tag=18),  # MAC in a Sign1 envelope
        _mac0(claims, protected={1: 5}, unprotected=es_kid, key=public_raw),  # HMAC keyed with public material
        _mac0(claims, protected={1: 4}, unprotected={4: b"Symmetric256"}),  # HMAC 256/64
    ]
    both = cat_dialect(
        keys=[
            {"kid": "Symmetric256", "secret": CAT_KEY_HEX},
            {"kid": "es256-key-1", "private_key": EC_P256_PRIVATE_PEM},
        ]
    )
    for forged in cases:
        assert denial(lambda f=forged: both.verify(via_header(f), now=NOW)) is Denial.BAD_SIGNATURE
    unprotected_alg = _mac0(claims, protected={}, unprotected={1: 5, 4: b"Symmetric256"})
    assert denial(lambda: CAT.verify(via_header(unprotected_alg), now=NOW)) is Denial.MALFORMED


def test_es256_sign1_verifies_with_cryptography_and_jwks() -> None:
    token = ES256.sign(grant()).token or ""
    assert ES256.verify(via_header(token), now=NOW).key_id == "es256-key-1"
    envelope = cbor2.loads(b64url_decode(token))
    assert envelope.tag == 61 and envelope.value.tag == 18
    protected, _, payload, signature = envelope.value.value
    assert cbor2.loads(protected) == {1: -7} and len(signature) == 64
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public = load_pem_private_key(EC_P256_PRIVATE_PEM.encode(), None).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, cbor2.dumps(["Signature1", protected, b"", payload]), ec.ECDSA(hashes.SHA256()))
    (jwk,) = ES256.jwks()["keys"]
    assert jwt.PyJWK(jwk).key.public_numbers() == public.public_numbers()
    assert CAT.jwks() == {"keys": []}  # HMAC secrets are never published


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({4: NOW + 60, 310: 2}, Denial.MALFORMED),
        ({6: NOW}, Denial.MALFORMED),
        ({4: NOW + 60, 45: [317]}, Denial.MALFORMED),
        ({4: NOW + 60, 45: [312], 312: {3: {1: "/vod/"}}}, None),
        ({4: NOW + 60, 312: {3: {9: "/vod/"}}}, Denial.MALFORMED),
        ({4: NOW + 60, 323: {0: 7, 1: 60}}, Denial.MALFORMED),
        ({4: NOW + 60, 323: {0: 0}}, Denial.MALFORMED),
        ({4: NOW + 60, 308: 1, 7: b"once"}, None),
        ({4: NOW + 60, 1: "someone.else"}, Denial.UNKNOWN_KEY),
        ({4: NOW + 60, 311: [64512]}, Denial.IP),
        ({4: NOW + 60, 316: ["GB"]}, Denial.IP),
        ({4: NOW + 60, 315: {"X-Device": {0: "tv"}}}, Denial.SCOPE),
        ({4: NOW + 60, 312: {4: {0: "a=1"}}}, None),
        ({4: NOW + 60, 312: {8: {0: ".ts"}, 7: {2: "001"}}}, None),
        ({4: NOW + 60, 312: {3: {-1: hashlib.sha256(b"/vod/movie1/seg_001.ts").hexdigest()}}}, None),
        ({4: NOW + 60, 312: {3: {-2: hashlib.new("sha512_256", b"/vod/movie1/seg_001.ts").digest()}}}, None),
        ({4: NOW + 60, 312: {3: {-2: hashlib.sha512(b"/vod/movie1/seg_001.ts").digest()[:32]}}}, Denial.ACL),
        ({4: NOW + 60, 312: {5: {4: ["^/vod/movie[0-9]+$"]}}}, None),
    ],
)
def test_claim_checks(claims: dict[int, Any], reason: Denial | None) -> None:
    token = _mac0(claims, protected={1: 5}, unprotected={4: b"Symmetric256"})
    request = EdgeRequest(url=SEGMENT + "?a=1&cat=x", headers={"Common-Access-Token": token})
    if reason is None:
        assert CAT.verify(request, now=NOW)
    else:
        assert denial(lambda: CAT.verify(request, now=NOW)) is reason


def test_single_use_tokens_are_refused_on_replay() -> None:
    dialect = cat_dialect()
    token = _mac0({4: NOW + 60, 308: 1, 7: b"entry-1"}, protected={1: 5}, unprotected={4: b"Symmetric256"})
    dialect.verify(via_header(token), now=NOW)
    assert denial(lambda: dialect.verify(via_header(token), now=NOW)) is Denial.REVOKED
    no_cti = _mac0({4: NOW + 60, 308: 1}, protected={1: 5}, unprotected={4: b"Symmetric256"})
    assert denial(lambda: dialect.verify(via_header(no_cti), now=NOW)) is Denial.MALFORMED


def test_transport_lookup_order_and_lenient_base64() -> None:
    token = CAT.sign(grant()).token or ""
    padded_std = base64.b64encode(b64url_decode(token)).decode()
    assert CAT.verify_token(EdgeRequest(url=f"{SEGMENT}?CAT={quote(padded_std)}"), now=NOW).query_param == "CAT"
    assert CAT.verify(EdgeRequest(url=f"{SEGMENT}?cat={padded_std.replace('=', '%3D')}"), now=NOW)  # raw '+' '/'
    both = EdgeRequest(url=f"{SEGMENT}?cat=garbage", headers={"common-access-token": token})
    assert CAT.verify_token(both, now=NOW).channel == "header"
    assert (
        denial(lambda: cat_dialect(require_cwt_tag=True).verify(via_header(_untagged(token)), now=NOW))
        is Denial.MALFORMED
    )
    assert CAT.verify(via_header(_untagged(token)), now=NOW)
    bare = b64url_encode(cbor2.dumps(cbor2.loads(b64url_decode(token)).value.value))
    assert denial(lambda: CAT.verify(via_header(bare), now=NOW)) is Denial.MALFORMED
    assert cat_dialect(accept_untagged=True).verify(via_header(bare), now=NOW)


def _untagged(token: str) -> str:
    return b64url_encode(cbor2.dumps(cbor2.loads(b64url_decode(token)).value))


# --- renewal ----------------------------------------------------------------------------------------


def test_header_renewal_uses_both_names_and_exposes_them() -> None:
    verified = CAT.verify_token(via_header(CAT.sign(grant()).token or ""), now=NOW)
    assert CAT.renew(verified, now=NOW + 539) is None
    renewed = CAT.renew(verified, now=NOW + 540)
    assert renewed is not None and renewed.status == 200 and renewed.expires_at == NOW + 660
    assert renewed.headers == (
        ("CTA-Common-Access-Token", renewed.token),
        ("Common-Access-Token", renewed.token),
        ("Access-Control-Expose-Headers", "CTA-Common-Access-Token, Common-Access-Token"),
    )
    again = CAT.verify_token(via_header(renewed.token), now=NOW + 650)
    assert again.claims[c.IAT] == NOW + 540 and again.claims[c.CTI] != verified.claims[c.CTI]
    assert again.grant == dataclasses.replace(verified.grant, expires_at=NOW + 660)


def test_renewal_stops_at_the_session_end() -> None:
    capped = CAT.sign(grant(session_id="s-9", session_ends_at=NOW + 630)).token or ""
    renewed = CAT.renew(CAT.verify_token(via_header(capped), now=NOW), now=NOW + 550)
    assert renewed is not None and renewed.expires_at == NOW + 630  # not NOW + 670
    last = CAT.verify_token(via_header(renewed.token), now=NOW + 600)
    assert last.grant.session_ends_at == NOW + 630
    assert CAT.renew(last, now=NOW + 600) is None


def test_redirect_renewal_for_query_tokens_and_forced_types() -> None:
    token = CAT.sign(grant()).token or ""
    verified = CAT.verify_token(EdgeRequest(url=f"{SEGMENT}?b=2&CAT={token}"), now=NOW)
    renewed = CAT.renew(verified, now=NOW + 590)
    assert renewed is not None and renewed.status == 302 and renewed.delivered_by == "redirect"
    assert renewed.headers == (("Location", f"{SEGMENT}?b=2&CAT={renewed.token}"),)
    forced = cat_dialect(renewal={"type": "redirect", "expadd_seconds": 60, "code": 307})
    verified = forced.verify_token(via_header(forced.sign(grant()).token or ""), now=NOW)
    renewed = forced.renew(verified, now=NOW + 590)
    assert (
        renewed is not None
        and renewed.status == 307
        and renewed.headers[0] == ("Location", f"{SEGMENT}?cat={renewed.token}")
    )
    header = cat_dialect(renewal={"type": "header", "expadd_seconds": 60, "header_name": "X-Cat"})
    verified = header.verify_token(EdgeRequest(url=f"{SEGMENT}?cat={header.sign(grant()).token}"), now=NOW)
    renewed = header.renew(verified, now=NOW + 590)
    assert renewed is not None and [name for name, _ in renewed.headers][2:] == [
        "X-Cat",
        "Access-Control-Expose-Headers",
    ]
    assert (
        CAT.renew(
            cat_dialect(renewal=None).verify_token(
                via_header(cat_dialect(renewal=None).sign(grant()).token or ""), now=NOW
            ),
            now=NOW + 599,
        )
        is None
    )


# --- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"keys": [{"kid": "a", "secret": "00" * 16}]}, r"keys\[0\].secret: 16 bytes"),
        ({"keys": [{"kid": "a", "secret": "zz"}]}, "not valid hex"),
        ({"keys": [{"kid": "a", "secret": "00" * 32, "encoding": "b64"}]}, "encoding"),
        (
            {"keys": [{"kid": "a", "private_key": "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----"}]},
            r"keys\[0\]",
        ),
        ({"keys": [{"kid": "a", "secret_env": "NOPE_NOT_SET_CAT"}]}, "NOPE_NOT_SET_CAT"),
        ({"renewal": {"type": "sometimes", "expadd_seconds": 1}}, "renewal.type"),
        ({"renewal": {"expadd_seconds": 60, "header_params": ["x"]}}, "header_params"),
        ({"renewal": {"expadd_seconds": 60, "deadline": 5}}, r"unknown key 'deadline' in \[dialects.cat.renewal\]"),
        ({"delivery": "path"}, "delivery"),
        ({"catnip": "full"}, r"unknown key 'catnip' in \[dialects.cat\]"),
    ],
)
def test_config_errors_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        cat_dialect(**table)
    assert CAT_KEY_HEX not in str(info.value)


def test_keys_from_file_env_and_base64url_and_repr_hides_them(tmp_path: Path) -> None:
    (tmp_path / "cat.key").write_text(CAT_KEY_HEX + "\n")
    environ = {"CAT_KEY_B64": b64url_encode(KEY)}
    for key in ({"secret_file": "cat.key"}, {"secret_env": "CAT_KEY_B64", "encoding": "base64url"}):
        dialect = from_config(
            {"issuer": "gateway.example", "keys": [{"kid": "Symmetric256", **key}]}, base_dir=tmp_path, environ=environ
        )
        assert dialect.keys == (HmacCatKey(b"Symmetric256", KEY),)
        assert CAT_KEY_HEX not in repr(dialect) and repr(KEY) not in repr(dialect)
    built = load_dialect("cat", {"keys": [{"kid": "Symmetric256", "secret": CAT_KEY_HEX}]})
    assert built.name == "cat" and built.prefix_signing


def test_satisfies_the_dialect_protocol() -> None:
    conforming: Dialect = CAT  # mypy checks the protocol; the registry hands out the same type
    assert conforming.prefix_signing
