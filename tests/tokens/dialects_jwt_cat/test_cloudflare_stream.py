"""Cloudflare Stream signed tokens, checked against PyJWT (an implementation that is not ours)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, Denial
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.base import Dialect, EdgeRequest
from gateway.tokens.dialects.cloudflare_stream import CloudflareStreamDialect, from_config
from gateway.tokens.grant import Grant
from gateway.tokens.keys import b64url_encode
from tests.tokens.dialects_jwt_cat.support import (
    NOW,
    RSA_KEY,
    RSA_PRIVATE_PEM,
    RSA_PUBLIC_KEY,
    RSA_PUBLIC_PEM,
    denial,
    grants,
    inside,
    outside,
)

KID = "8f926b2b01f383510025a78a4dcbf6a"
UID = "ea95132c15732412d22c1476fa83f27a"
HOST = "https://customer-f33zs165nr7gyfy4.cloudflarestream.com"
# A worked example: PyJWT 2.15.1 output for the test RSA key (support.RSA_PRIVATE_PEM).
DOC_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjhmOTI2YjJiMDFmMzgzNTEwMDI1YTc4YTRkY2JmNmEiLCJ0eXAiOiJKV1QifQ."
    "eyJzdWIiOiJlYTk1MTMyYzE1NzMyNDEyZDIyYzE0NzZmYTgzZjI3YSIsImtpZCI6IjhmOTI2YjJiMDFmMzgzNTEwMDI1YTc4YTRkY2Jm"
    "NmEiLCJleHAiOjE3NjcyOTA0MDAsIm5iZiI6MTc2NzIwMDAwMCwiZG93bmxvYWRhYmxlIjpmYWxzZSwiYWNjZXNzUnVsZXMiOlt7In"
    "R5cGUiOiJpcC5nZW9pcC5jb3VudHJ5IiwiYWN0aW9uIjoiYWxsb3ciLCJjb3VudHJ5IjpbIkdCIl19LHsidHlwZSI6ImFueSIsImFj"
    "dGlvbiI6ImJsb2NrIn1dfQ."
    "RyWDUMEnTrVhKWSOT6muDiT8ktVU-wYEyK0XA94FD02Gu9PrMafymoZuENJdEdGJdKkYZ3lfneu95LffQvEOWXtL67il3PBjDzRAmpUq"
    "XGscSjLIWJq75vHQ7s8MTRj7DrFRpVCH4gcsNSVfFet5Y2YHU4hjTuA3VlERuig9x4LB8CAXI6SJ4-rhdW8LZ3ZjgU1z74yucO-u1Ek"
    "4-61WW9dCSNFheHlXTfm7zfSBdeb3szIBlTrbRWs45Ffq9-y3cM9Xm0emWBJQPzwz_XYmtP7hxIpcXibYXs9XBPPKbgZ3gmv51kbyp52"
    "1DCTuhJouFSRO_Q3CcFTkJywsyjoOWw"
)
uids = st.text("0123456789abcdef", min_size=32, max_size=32)


def dialect(**table: Any) -> CloudflareStreamDialect:
    config: dict[str, Any] = {
        "customer_code": "f33zs165nr7gyfy4",
        "keys": [{"kid": KID, "private_key": RSA_PRIVATE_PEM}],
    }
    config.update(table)
    return from_config(config, base_dir=Path())


def grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {"path_prefixes": (f"/vod/{UID}/",), "expires_at": NOW + 600}
    fields.update(changes)
    return Grant(**fields)


def request(token: str, path: str = "manifest/video.m3u8", **kw: Any) -> EdgeRequest:
    return EdgeRequest(url=f"{HOST}/{token}/{path}", **kw)


CF = dialect()


def test_reproduces_the_worked_example_byte_for_byte() -> None:
    cf = dialect(
        downloadable=False,
        access_rules=[
            {"type": "ip.geoip.country", "action": "allow", "country": ["GB"]},
            {"type": "any", "action": "block"},
        ],
    )
    credentials = cf.sign(grant(expires_at=1767290400, not_before=1767200000))
    assert credentials.token == credentials.path_token == DOC_TOKEN
    assert credentials.url == f"{HOST}/{DOC_TOKEN}/manifest/video.m3u8"


@settings(max_examples=40, deadline=None)
@given(grants(prefix=uids.map(lambda uid: f"/vod/{uid}/"), user=False))
def test_pyjwt_agrees_byte_for_byte_and_verify_returns_the_grant(original: Grant) -> None:
    cf = CF
    token = cf.sign(original).token
    assert token is not None
    payload = cf.claims(original, KID)
    assert token == jwt.encode(payload, RSA_KEY, "RS256", headers={"kid": KID})
    # PyJWT reads the wall clock, so its nbf check is off; our own time checks run at `now` below.
    assert jwt.decode(token, RSA_PUBLIC_KEY, algorithms=["RS256"], options={"verify_nbf": False}) == payload
    assert payload["sub"] == original.path_prefixes[0].split("/")[2]
    now = float(original.not_before or NOW)
    assert cf.verify(request(token, client_ip=inside(original.client_network)), now=now) == original


def test_client_network_becomes_ip_src_allow_then_any_block() -> None:
    cf = CF
    token = cf.sign(grant(client_network=ipaddress.ip_network("2001:db8::/32"))).token
    assert token is not None
    claims = jwt.decode(token, RSA_PUBLIC_PEM, algorithms=["RS256"])
    assert claims["accessRules"] == [
        {"type": "ip.src", "action": "allow", "ip": ["2001:db8::/32"]},
        {"type": "any", "action": "block"},
    ]
    assert cf.verify(request(token, client_ip=ipaddress.ip_address("2001:db8::5")), now=NOW).client_network
    assert (
        denial(lambda: cf.verify(request(token, client_ip=ipaddress.ip_address("2001:db9::5")), now=NOW)) is Denial.IP
    )
    assert denial(lambda: cf.verify(request(token, client_ip=None), now=NOW)) is Denial.IP


def test_ipv4_mapped_ipv6_client_matches_an_ipv4_rule() -> None:
    cf = CF
    token = cf.sign(grant(client_network=ipaddress.ip_network("198.51.100.0/24"))).token
    assert token is not None
    cf.verify(request(token, client_ip=ipaddress.ip_address("::ffff:198.51.100.7")), now=NOW)


@settings(max_examples=30, deadline=None)
@given(grants(prefix=st.just(f"/vod/{UID}/"), user=False).filter(lambda g: g.client_network is not None))
def test_wrong_ip_is_refused(original: Grant) -> None:
    cf = CF
    token = cf.sign(original).token
    assert token is not None and original.client_network is not None
    wrong = outside(original.client_network)
    assert denial(lambda: cf.verify(request(token, client_ip=wrong), now=NOW)) is Denial.IP


def test_country_rules_need_a_country_and_fail_closed() -> None:
    cf = dialect(
        country_header="CF-IPCountry",
        access_rules=[{"type": "ip.geoip.country", "action": "block", "country": ["RU"]}],
    )
    token = cf.sign(grant()).token
    assert token is not None
    cf.verify(request(token, headers={"cf-ipcountry": "GB"}), now=NOW)
    assert denial(lambda: cf.verify(request(token, headers={"CF-IPCountry": "ru"}), now=NOW)) is Denial.IP
    assert denial(lambda: cf.verify(request(token), now=NOW)) is Denial.IP


def test_expired_and_not_yet_valid() -> None:
    cf = CF
    token = cf.sign(grant(not_before=NOW - 10, expires_at=NOW + 60)).token
    assert token is not None
    assert denial(lambda: cf.verify(request(token), now=NOW + 60)) is Denial.EXPIRED
    assert denial(lambda: cf.verify(request(token), now=NOW - 11)) is Denial.NOT_YET_VALID
    assert cf.verify(request(token), now=NOW + 59).expires_at == NOW + 60
    lenient = dialect(leeway_seconds=5)
    assert lenient.verify(request(token), now=NOW + 62).expires_at == NOW + 60


def test_payload_swap_keeps_the_signature_from_verifying() -> None:
    cf = CF
    token = cf.sign(grant()).token
    assert token is not None
    header, _, signature = token.split(".")
    forged = json.dumps({"sub": "0" * 32, "kid": KID, "exp": NOW + 600}, separators=(",", ":")).encode()
    assert (
        denial(lambda: cf.verify(request(f"{header}.{b64url_encode(forged)}.{signature}"), now=NOW))
        is Denial.BAD_SIGNATURE
    )


@pytest.mark.parametrize(
    "path",
    ["../0000000000000000000000000000000/manifest/video.m3u8", "manifest/%2e%2e/%2e%2e/x", "manifest//video.m3u8"],
)
def test_path_tricks_are_acl(path: str) -> None:
    token = CF.sign(grant()).token
    assert token is not None
    assert denial(lambda: CF.verify(request(token, path), now=NOW)) is Denial.ACL


def test_downloads_need_downloadable() -> None:
    plain = CF.sign(grant()).token or ""
    assert denial(lambda: CF.verify(request(plain, "downloads/default.mp4"), now=NOW)) is Denial.SCOPE
    allowed = dialect(downloadable=True).sign(grant()).token or ""
    assert CF.verify(request(allowed, "downloads/default.mp4"), now=NOW)


def test_unsigned_uid_path_is_missing_and_bare_token_is_acl() -> None:
    cf = CF
    assert denial(lambda: cf.verify(request(UID), now=NOW)) is Denial.MISSING
    token = cf.sign(grant()).token
    assert denial(lambda: cf.verify(EdgeRequest(url=f"{HOST}/{token}/"), now=NOW)) is Denial.ACL


def test_key_rotation_signs_with_the_newest_and_verifies_by_kid(second_rsa_pem: str) -> None:
    old = dialect()
    rotated = dialect(keys=[{"kid": "new", "private_key": second_rsa_pem}, {"kid": KID, "public_key": RSA_PUBLIC_PEM}])
    new_token = rotated.sign(grant()).token
    assert new_token is not None and jwt.get_unverified_header(new_token)["kid"] == "new"
    assert rotated.verify(request(new_token), now=NOW).key_id == "new"
    old_token = old.sign(grant()).token
    assert old_token is not None
    assert rotated.verify(request(old_token), now=NOW).key_id == KID
    assert denial(lambda: old.verify(request(new_token), now=NOW)) is Denial.UNKNOWN_KEY
    verify_only = dialect(keys=[{"kid": KID, "public_key": RSA_PUBLIC_PEM}])
    with pytest.raises(ConfigError, match="only verify"):
        verify_only.sign(grant())


def _hs256_with_public_key(payload: dict[str, Any], alg: str = "HS256") -> str:
    header = b64url_encode(json.dumps({"alg": alg, "kid": KID, "typ": "JWT"}).encode())
    body = b64url_encode(json.dumps(payload).encode())
    mac = hmac.new(RSA_PUBLIC_PEM.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url_encode(mac)}"  # 'none' too: an empty last segment is refused earlier


@pytest.mark.parametrize("alg", ["HS256", "none", "RS512", "rs256"])
def test_algorithm_confusion_is_refused(alg: str) -> None:
    forged = _hs256_with_public_key({"sub": UID, "kid": KID, "exp": NOW + 600}, alg)
    assert denial(lambda: CF.verify(request(forged), now=NOW)) is Denial.BAD_SIGNATURE


def test_duplicate_json_members_are_malformed() -> None:
    header = b64url_encode(b'{"alg":"RS256","kid":"x","kid":"8f926b2b01f383510025a78a4dcbf6a"}')
    assert denial(lambda: CF.verify(request(f"{header}.e30.AA"), now=NOW)) is Denial.MALFORMED


def test_signed_urls_map_gateway_and_cloudflare_paths() -> None:
    cf = CF
    token = cf.sign(grant()).token
    assert cf.sign(grant(), url=f"/vod/{UID}/manifest/video.mpd").url == f"{HOST}/{token}/manifest/video.mpd"
    assert (
        cf.sign(grant(), url=f"{HOST}/{UID}/thumbnails/t.jpg?time=2s").url == f"{HOST}/{token}/thumbnails/t.jpg?time=2s"
    )
    with pytest.raises(ValueError, match="neither under"):
        cf.sign(grant(), url="/vod/other/manifest/video.m3u8")
    with pytest.raises(ValueError, match="prefix_template"):
        cf.sign(grant(path_prefixes=("/live/x/",)))


def test_jwks_verifies_with_pyjwt() -> None:
    cf = CF
    token = cf.sign(grant()).token
    assert token is not None
    (jwk,) = cf.jwks()["keys"]
    assert jwk["kid"] == KID and jwk["alg"] == "RS256" and "d" not in jwk
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"])["sub"] == UID


def test_keys_load_from_cloudflare_base64_pem_jwk_file_and_env(tmp_path: Path) -> None:
    wrapped_pem = base64.b64encode(RSA_PRIVATE_PEM.encode()).decode()
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY)
    minimal_jwk = json.dumps({k: v for k, v in json.loads(jwk).items() if k in ("kty", "n", "e", "d")})
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "cf.pem").write_text(RSA_PRIVATE_PEM)
    tokens = set()
    for key in (
        {"private_key": wrapped_pem},
        {"private_key": base64.b64encode(jwk.encode()).decode()},
        {"private_key": minimal_jwk},
        {"private_key_file": "keys/cf.pem"},
        {"private_key_env": "CF_STREAM_KEY"},
    ):
        cf = from_config(
            {"customer_code": "abc", "keys": [{"kid": KID, **key}]},
            base_dir=tmp_path,
            environ={"CF_STREAM_KEY": wrapped_pem},
        )
        tokens.add(cf.sign(grant()).token)
        assert "PRIVATE" not in repr(cf) and "MIIE" not in repr(cf)
    assert len(tokens) == 1  # RS256 is deterministic: the same key gives the same token


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"keys": [{"kid": KID, "private_key": RSA_PRIVATE_PEM}]}, "customer_code"),
        ({"customer_code": "abc"}, "dialects.cloudflare_stream.keys"),
        ({"customer_code": "abc", "keys": [{"kid": KID}]}, r"keys\[0\]"),
        ({"customer_code": "abc", "keys": [{"kid": KID, "private_key_env": "NOPE_NOT_SET"}]}, "NOPE_NOT_SET"),
        ({"customer_code": "abc", "prefix_template": "/vod/x{uid}/", "keys": []}, "prefix_template"),
        ({"customer_code": "abc", "expiry": 5, "keys": []}, r"unknown key 'expiry' in \[dialects.cloudflare_stream\]"),
        (
            {"customer_code": "abc", "access_rules": [{"type": "ip.src", "action": "allow", "ip": ["10.0.0.1/8"]}]},
            "access_rules",
        ),
        (
            {"customer_code": "abc", "access_rules": [{"type": "any", "action": "allow", "country": ["NL"]}]},
            r"unknown key 'country' in \[dialects.cloudflare_stream.access_rules\[0\]\]; known: action, type",
        ),
    ],
)
def test_config_errors_name_the_dialect_and_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        from_config(table, base_dir=Path())
    assert "MIIE" not in str(info.value)


def test_registry_builds_it() -> None:
    built = load_dialect(
        "cloudflare_stream", {"customer_code": "abc", "keys": [{"kid": KID, "public_key": RSA_PUBLIC_PEM}]}
    )
    assert built.name == "cloudflare_stream" and built.prefix_signing


def test_satisfies_the_dialect_protocol() -> None:
    conforming: Dialect = CF  # mypy checks the protocol; the registry hands out the same type
    assert conforming.prefix_signing
