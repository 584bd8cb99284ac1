"""CloudFront: byte-identical to botocore's CloudFrontSigner (SHA-1), SHA-256/ECDSA checked with `cryptography`."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.signers import CloudFrontSigner  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects import cloudfront
from gateway.tokens.dialects.base import EdgeRequest, SigningOptions
from gateway.tokens.dialects.support.cdn_request import UnsupportedGrant, encoded_prefix
from gateway.tokens.grant import Grant
from tests.tokens.dialects.dialect_helpers import (
    FIXTURES,
    HOST,
    NOW,
    edge_request,
    file_url,
    grants,
    load_vectors,
    networks,
    rich_segments,
)

VECTORS = load_vectors("cloudfront_vectors.json")
KEY_ID = "K2JCJMDEHXQW5F"


def make(pem: str, key_id: str = KEY_ID, **settings_: Any) -> cloudfront.CloudFront:
    return _make(pem, key_id, tuple(sorted(settings_.items())))


@functools.lru_cache(maxsize=32)
def _make(pem: str, key_id: str, settings_: tuple[tuple[str, Any], ...]) -> cloudfront.CloudFront:
    # Loading an RSA key checks it (tens of ms): build each configuration once per run.
    table = {"base_url": HOST, "keys": [{"id": key_id, "private_key": pem}], **dict(settings_)}
    return cloudfront.from_config(table, base_dir=Path())


def cf_decode(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


@functools.lru_cache(maxsize=4)
def private_key(pem: str) -> Any:
    """The key loaded independently of the dialect code, with `cryptography` alone."""
    return load_pem_private_key(pem.encode(), password=None)


@functools.lru_cache(maxsize=4)
def botocore_signer(pem: str) -> CloudFrontSigner:
    key = private_key(pem)
    # RSA-SHA1 is CloudFront's default signature; botocore's signer callback is given exactly that.
    return CloudFrontSigner(KEY_ID, lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1()))  # noqa: S303


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# -- published / worked vectors ------------------------------------------------------------------------


def vector_dialect(**settings_: Any) -> cloudfront.CloudFront:
    table = {
        "base_url": VECTORS["base_url"],
        "keys": [{"id": VECTORS["key_pair_id"], "private_key_file": VECTORS["key_file"]}],
        **settings_,
    }
    return cloudfront.from_config(table, base_dir=FIXTURES)


def vector_grant() -> Grant:
    return Grant(
        (VECTORS["prefix"],),
        VECTORS["expires"],
        VECTORS["not_before"],
        ipaddress.ip_network(VECTORS["network"]),
    )


def test_dialects_md_vectors_reproduce_and_verify() -> None:
    url, grant = VECTORS["url"], vector_grant()
    canned = vector_dialect(policy="canned").sign(Grant((VECTORS["prefix"],), VECTORS["expires"]), url=url)
    assert canned.url == VECTORS["canned_sha1_url"]
    assert vector_dialect().sign(grant, url=url).url == VECTORS["custom_sha1_url"]
    assert vector_dialect(hash_algorithm="SHA256").sign(grant, url=url).url == VECTORS["custom_sha256_url"]
    cookies = vector_dialect(delivery="cookie").sign(grant)
    assert {c.name: c.value for c in cookies.cookies} == VECTORS["custom_sha1_cookies"]
    client = ipaddress.ip_address("203.0.113.77")
    for dialect, signed in (
        (vector_dialect(policy="canned"), VECTORS["canned_sha1_url"]),
        (vector_dialect(), VECTORS["custom_sha1_url"]),
        (vector_dialect(), VECTORS["custom_sha256_url"]),
    ):
        assert dialect.verify(EdgeRequest(signed, client_ip=client), now=VECTORS["not_before"] + 1)
    verified = vector_dialect().verify(
        EdgeRequest(url, cookies=VECTORS["custom_sha1_cookies"], client_ip=client), now=VECTORS["not_before"] + 1
    )
    assert verified == grant and verified.key_id == KEY_ID


# -- botocore: byte-identical SHA-1 URLs ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(grant=grants(segments=rich_segments, network=networks(4)), name=st.sampled_from(["a.m3u8", "x y.ts"]))
def test_custom_policy_urls_match_botocore(rsa_pem: str, grant: Grant, name: str) -> None:
    url = file_url(grant, name.replace(" ", "%20"))
    ours = make(rsa_pem).sign(grant, url=url)
    signer = botocore_signer(rsa_pem)
    policy = signer.build_policy(
        HOST + encoded_prefix(grant.path_prefixes[0]) + "*",
        utc(grant.expires_at),
        date_greater_than=utc(grant.not_before) if grant.not_before else None,
        ip_address=str(grant.client_network) if grant.client_network else None,
    )
    assert ours.url == signer.generate_presigned_url(url, policy=policy)


@settings(max_examples=40, deadline=None)
@given(grant=grants(segments=rich_segments, not_before=False), query=st.sampled_from(["", "?color=red", "?a=1&b=2"]))
def test_canned_policy_urls_match_botocore(rsa_pem: str, grant: Grant, query: str) -> None:
    url = file_url(grant) + query
    ours = make(rsa_pem, policy="canned").sign(grant, url=url)
    assert ours.url == botocore_signer(rsa_pem).generate_presigned_url(url, date_less_than=utc(grant.expires_at))


# -- SHA-256 and ECDSA: checked with the public key ---------------------------------------------------


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@settings(max_examples=25, deadline=None)
@given(grant=grants(network=networks(4)))
def test_sha256_and_ecdsa_signatures_verify_with_cryptography(rsa_pem: str, ec_pem: str, grant: Grant) -> None:
    for dialect, pem in ((make(rsa_pem, hash_algorithm="SHA256"), rsa_pem), (make(ec_pem), ec_pem)):
        signed = dialect.sign(grant, url=file_url(grant))
        assert signed.url is not None and signed.url.endswith("&Hash-Algorithm=SHA256")
        params = _params(signed.url)
        policy, signature = cf_decode(params["Policy"]), cf_decode(params["Signature"])
        public = private_key(pem).public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, policy, ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(signature, policy, padding.PKCS1v15(), hashes.SHA256())
        statement = json.loads(policy)["Statement"][0]
        assert statement["Resource"] == HOST + encoded_prefix(grant.path_prefixes[0]) + "*"
        assert dialect.verify(edge_request(signed, file_url(grant), client_ip=_inside(grant)), now=NOW) == grant


def _inside(grant: Grant) -> Any:
    return grant.client_network.network_address if grant.client_network else None


def test_cookies_carry_the_url_parameters(ec_pem: str) -> None:
    grant = Grant(("/vod/title-9000/",), NOW + 600)
    cookies = make(ec_pem, delivery="cookie", cookie_domain="cdn.example.com").sign(grant).cookies
    assert [c.name for c in cookies] == [
        "CloudFront-Policy",
        "CloudFront-Signature",
        "CloudFront-Key-Pair-Id",
        "CloudFront-Hash-Algorithm",
    ]
    assert {c.path for c in cookies} == {"/vod/title-9000/"} and cookies[0].domain == "cdn.example.com"


# -- IPv6: CloudFront's IpAddress is IPv4-only ---------------------------------------------------------


def test_ipv6_network_is_refused_unless_best_effort(rsa_pem: str) -> None:
    grant = Grant(("/vod/t/",), NOW + 600, client_network=ipaddress.ip_network("2001:db8::/64"))
    with pytest.raises(UnsupportedGrant, match="IPv4"):
        make(rsa_pem).sign(grant)
    signed = make(rsa_pem, ip_binding="best-effort").sign(grant)
    policy = cf_decode(dict(signed.query)["Policy"])
    assert b"IpAddress" not in policy


def test_canned_policy_refuses_what_it_cannot_carry(rsa_pem: str) -> None:
    dialect = make(rsa_pem, policy="canned")
    with pytest.raises(ValueError, match="pass url"):
        dialect.sign(Grant(("/vod/t/",), NOW + 600))
    with pytest.raises(UnsupportedGrant, match="start time"):
        dialect.sign(Grant(("/vod/t/",), NOW + 600, NOW - 5), url=HOST + "/vod/t/a.ts")
    with pytest.raises(ValueError, match="outside"):
        dialect.sign(Grant(("/vod/t/",), NOW + 600), url=HOST + "/vod/other/a.ts")


# -- signing options: start time, one custom Resource with wildcards (issue 11.3) ----------------------


@pytest.mark.parametrize(
    ("resource", "signed"),
    [
        ("/vod/title-9000/*", HOST + "/vod/title-9000/*"),
        ("/vod/*/720p/seg-?.ts", HOST + "/vod/*/720p/seg-?.ts"),
        ("http*://cdn.example.com/vod/café x/*", "http*://cdn.example.com/vod/caf%C3%A9%20x/*"),
        ("https://cdn.example.com/vod/caf%c3%a9/*", HOST + "/vod/caf%C3%A9/*"),
    ],
)
def test_custom_resource_and_start_match_botocore(rsa_pem: str, resource: str, signed: str) -> None:
    grant = Grant(("/unused/",), NOW + 600, NOW - 60, ipaddress.ip_network("203.0.113.0/24"))
    url = signed.replace("http*", "https").replace("*", "a").replace("?", "1")  # a URL the Resource covers
    ours = make(rsa_pem).sign(grant, url=url, options=SigningOptions(resources=(resource,)))
    signer = botocore_signer(rsa_pem)
    policy = signer.build_policy(signed, utc(NOW + 600), utc(NOW - 60), "203.0.113.0/24")
    assert ours.url == signer.generate_presigned_url(url, policy=policy)
    assert json.loads(cf_decode(dict(ours.query)["Policy"]))["Statement"][0]["Resource"] == signed


def test_custom_resource_wildcards_match_as_cloudfront_does(rsa_pem: str) -> None:
    dialect = make(rsa_pem)
    options = SigningOptions(resources=("http*://cdn.example.com/vod/t?/seg-??.ts*",))
    query = dialect.sign(Grant(("/x/",), NOW + 600), options=options).query_string()
    for url, reason in (
        (HOST + "/vod/t1/seg-01.ts", None),
        ("http://cdn.example.com/vod/t1/seg-01.ts", None),  # 'http*' covers both schemes
        (HOST + "/vod/t1/seg-01.ts?x=1", None),  # the trailing '*' covers the viewer's query
        (HOST + "/vod/t1/seg-001.ts", Denial.ACL),  # '?' is exactly one character
        (HOST + "/vod/t12/seg-01.ts", Denial.ACL),
        ("https://other.example.com/vod/t1/seg-01.ts", Denial.ACL),
    ):
        request = EdgeRequest(url + ("&" if "?" in url else "?") + query)
        if reason is None:
            assert dialect.verify(request, now=NOW).expires_at == NOW + 600
        else:
            assert _denial(dialect, request).reason is reason, url


def test_options_cloudfront_cannot_express_are_refused(rsa_pem: str) -> None:
    grant = Grant(("/vod/t/",), NOW + 600)
    for options, message in (
        (SigningOptions(resources=("/a/*", "/b/*")), "one Resource"),
        (SigningOptions(resources=("vod/*",)), "URL or a path"),
        (SigningOptions(resources=("/vod/a\\b/*",)), "backslash"),
        (SigningOptions(method="GET"), "method"),
        (SigningOptions(headers=(("X-A", "1"),)), "headers"),
    ):
        with pytest.raises(UnsupportedGrant, match=message):
            make(rsa_pem).sign(grant, options=options)
    with pytest.raises(ValueError, match="outside the Resource"):
        make(rsa_pem).sign(grant, url=HOST + "/vod/t/a.ts", options=SigningOptions(resources=("/live/*",)))
    with pytest.raises(UnsupportedGrant, match="resources"):  # a canned policy is one exact URL
        make(rsa_pem, policy="canned").sign(grant, url=HOST + "/vod/t/a.ts", options=SigningOptions(resources=("/*",)))


# -- the edge's decisions ------------------------------------------------------------------------------


def _signed(pem: str, **settings_: Any) -> tuple[cloudfront.CloudFront, str]:
    dialect = make(pem, **settings_)
    grant = Grant(("/vod/t/",), NOW + 600, NOW - 600)
    url = dialect.sign(grant, url=HOST + "/vod/t/a.ts").url
    assert url is not None
    return dialect, url


def _denial(dialect: cloudfront.CloudFront, request: EdgeRequest, now: float = NOW) -> TokenDenied:
    with pytest.raises(TokenDenied) as caught:
        dialect.verify(request, now=now)
    return caught.value


def test_edge_denials_name_the_reason(rsa_pem: str, ec_pem: str) -> None:
    dialect, url = _signed(rsa_pem)
    assert _denial(dialect, EdgeRequest(url.replace(KEY_ID, "KOTHER"))).reason is Denial.UNKNOWN_KEY
    assert _denial(dialect, EdgeRequest(url), now=NOW + 600).reason is Denial.EXPIRED  # DateLessThan is strict
    early = _denial(dialect, EdgeRequest(url), now=NOW - 601)
    assert early.reason is Denial.NOT_YET_VALID and early.values["not_before"] == NOW - 600
    assert _denial(dialect, EdgeRequest(url + "&Signature=x")).reason is Denial.MALFORMED  # pollution
    other_host = url.replace("cdn.example.com", "evil.example.com")
    assert _denial(dialect, EdgeRequest(other_host)).reason is Denial.ACL
    assert _denial(dialect, EdgeRequest(HOST + "/vod/t/a.ts")).reason is Denial.MISSING
    ec_dialect, ec_url = _signed(ec_pem)
    no_hash = ec_url.replace("&Hash-Algorithm=SHA256", "")
    assert _denial(ec_dialect, EdgeRequest(no_hash)).reason is Denial.BAD_SIGNATURE


# -- configuration -------------------------------------------------------------------------------------


def test_config_reads_keys_from_file_env_and_jwk(rsa_pem: str, tmp_path: Path) -> None:
    (tmp_path / "cf.pem").write_text(rsa_pem)
    from_file = cloudfront.from_config(
        {"base_url": HOST, "keys": [{"id": "K1", "private_key_file": "cf.pem"}]}, base_dir=tmp_path
    )
    from_env = cloudfront.from_config(
        {"base_url": HOST, "keys": [{"id": "K1", "private_key_env": "CF_TEST_KEY"}]},
        base_dir=tmp_path,
        environ={"CF_TEST_KEY": rsa_pem},  # the environment the loader was given, not the process's
    )
    grant = Grant(("/vod/t/",), NOW + 60)
    assert from_file.sign(grant) == from_env.sign(grant)
    public_only = _jwk_public(rsa_pem)
    verifier = cloudfront.from_config(
        {"base_url": HOST, "keys": [{"id": "K1", "public_key": public_only}]}, base_dir=tmp_path
    )
    assert verifier.verify(edge_request(from_file.sign(grant), HOST + "/vod/t/x.ts"), now=NOW) == grant
    with pytest.raises(ValueError, match="no key"):
        verifier.sign(grant)


def _jwk_public(pem: str) -> str:
    numbers = load_pem_private_key(pem.encode(), password=None).public_key().public_numbers()  # type: ignore[union-attr]

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode().rstrip("=")

    return json.dumps({"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e)})  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"keys": [{"id": "K1", "private_key": "x"}]}, "base_url: is required"),
        ({"base_url": "https://h/path", "keys": [{"id": "K1", "private_key": "x"}]}, "base_url"),
        ({"base_url": HOST, "keys": [{"id": "K-1", "private_key": "x"}]}, r"keys\[0\].id"),
        ({"base_url": HOST, "keys": [{"id": "K1", "private_key": "SECRET-MATERIAL"}]}, r"keys\[0\].private_key"),
        ({"base_url": HOST, "keys": [{"id": "K1"}]}, "give exactly one of public_key"),
        ({"base_url": HOST, "keys": [{"id": "K1", "private_key_env": "NO_SUCH_VAR_CF"}]}, "NO_SUCH_VAR_CF"),
        ({"base_url": HOST, "keys": [], "polcy": "canned"}, r"unknown key 'polcy' in \[dialects.cloudfront\]; known: "),
        ({"base_url": HOST, "keys": [{"id": "K1", "private_key": "x"}], "policy": "x"}, "policy: must be one of"),
    ],
)
def test_config_errors_name_dialect_and_field_never_the_secret(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        cloudfront.from_config(table, base_dir=Path())
    assert "[dialects.cloudfront]" in str(caught.value)
    assert "SECRET-MATERIAL" not in str(caught.value)


def test_repr_shows_no_key_material(rsa_pem: str) -> None:
    dialect = make(rsa_pem)
    assert "PRIVATE" not in repr(dialect) and "public_key" not in repr(dialect) and "keys=" not in repr(dialect)
