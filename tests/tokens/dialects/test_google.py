"""Google Cloud CDN, Media CDN and Media CDN dual-token: Google's published vectors, reproduced and verified."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects import cloud_cdn, media_cdn, media_cdn_dualtoken
from gateway.tokens.dialects.base import EdgeRequest
from gateway.tokens.dialects.support.cdn_request import UnsupportedGrant
from gateway.tokens.dialects.support.google_signed import GoogleSignedRequests, b64url, prefix_policy
from gateway.tokens.grant import Grant
from tests.tokens.dialects.dialect_helpers import NOW, load_vectors

VECTORS = load_vectors("google_vectors.json")
PRODUCTS = {"cloud_cdn": cloud_cdn, "media_cdn": media_cdn}
DUAL = VECTORS["media_cdn_dualtoken"]


def product(name: str, base_url: str, form: str, key_name: str | None = None, key: str | None = None) -> Any:
    vectors = VECTORS[name]
    key_field = "secret" if name == "cloud_cdn" else "private_key"
    table = {
        "base_url": base_url,
        "form": form,
        "keys": [{"name": key_name or vectors["key_name"], key_field: key or vectors["key"]}],
    }
    return PRODUCTS[name].from_config(table, base_dir=Path())


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def denial(dialect: Any, request: EdgeRequest, now: float) -> TokenDenied:
    with pytest.raises(TokenDenied) as caught:
        dialect.verify(request, now=now)
    return caught.value


# -- Cloud CDN (HMAC-SHA1) and Media CDN (Ed25519) signed requests -------------------------------------


@pytest.mark.parametrize("name", PRODUCTS)
@pytest.mark.parametrize("index", range(3))
def test_signed_url_vectors(name: str, index: int) -> None:
    vector, expires = VECTORS[name]["signed_url"][index], VECTORS[name]["expires"]
    dialect = product(name, origin(vector["url"]), "url")
    signed = dialect.sign(Grant(("/",), expires), url=vector["url"])
    assert signed.url == vector["expected"]
    verified = dialect.verify(EdgeRequest(vector["expected"]), now=expires)
    assert verified.expires_at == expires and verified.key_id == "my-key"
    assert denial(dialect, EdgeRequest(vector["expected"]), now=expires + 1).reason is Denial.EXPIRED
    tampered = vector["expected"].replace("KeyName=my-key", "KeyName=my-kez")
    assert denial(dialect, EdgeRequest(tampered), now=expires).reason is Denial.UNKNOWN_KEY


@pytest.mark.parametrize("name", PRODUCTS)
@pytest.mark.parametrize("index", range(3))
def test_signed_url_prefix_vectors(name: str, index: int) -> None:
    vector, expires = VECTORS[name]["signed_url_prefix"][index], VECTORS[name]["expires"]
    base = origin(vector["prefix"])
    dialect = product(name, base, "url_prefix")
    grant = Grant((vector["prefix"][len(base) :],), expires)
    assert dialect.sign(grant, url=vector["url"]).url == vector["expected"]
    assert dialect.verify(EdgeRequest(vector["expected"]), now=expires) == grant
    sibling = vector["expected"].replace(base + "/", base + "/other/", 1)
    reason = Denial.ACL if vector["prefix"] != base + "/" else None
    if reason is not None:
        assert denial(dialect, EdgeRequest(sibling), now=expires).reason is reason


@pytest.mark.parametrize("name", PRODUCTS)
def test_signed_cookie_vectors(name: str) -> None:
    vectors = VECTORS[name]
    expires, cookie_name = vectors["expires"], PRODUCTS[name].COOKIE_NAME
    file_vector, dir_vector = vectors["signed_cookie"]
    base = origin(dir_vector["prefix"])
    dialect = product(name, base, "cookie")
    # The directory prefix through the dialect; the single-file prefix through the layout function.
    signed = dialect.sign(Grant((dir_vector["prefix"][len(base) :],), expires))
    assert f"{cookie_name}={signed.cookies[0].value}" == dir_vector["expected"]
    key = dialect.signing_key
    policy = prefix_policy(file_vector["prefix"], expires, key.name, ":")
    signature = b64url(key.sign(policy.encode()), padded=dialect.COOKIE_SIGNATURE_PADDED)
    assert f"{cookie_name}={policy}:Signature={signature}" == file_vector["expected"]
    for vector in vectors["signed_cookie"]:
        value = vector["expected"].split("=", 1)[1]
        target = vector["prefix"] + ("x.ts" if vector["prefix"].endswith("/") else "")
        request = EdgeRequest(target, cookies={cookie_name: value})
        assert dialect.verify(request, now=expires).key_id == "my-key"


def test_media_cdn_path_component_vector() -> None:
    vector = VECTORS["media_cdn"]["path_component"]
    dialect = product("media_cdn", origin(vector["url_prefix"]), "path", vector["key_name"], vector["key"])
    signed = dialect.sign(Grant(("/",), vector["expires"]), url=vector["url_prefix"] + vector["filename"])
    # Google's sign_path_component strips the padding; its older test expected it: both spellings verify.
    assert signed.url == vector["expected"].replace("==/", "/")
    assert signed.path_token is not None and signed.path_token.startswith("edge-cache-token=Expires=")
    for url in (signed.url, vector["expected"]):
        assert dialect.verify(EdgeRequest(url), now=vector["expires"]).path_prefixes == ("/",)
    escape = vector["expected"].replace("/test-filename", "/../etc/passwd")
    assert denial(dialect, EdgeRequest(escape), now=vector["expires"]).reason is Denial.ACL


@pytest.mark.parametrize("name", PRODUCTS)
def test_unsupported_constraints_are_refused_unless_best_effort(name: str) -> None:
    dialect: GoogleSignedRequests = product(name, "https://cdn.example.com", "url_prefix")
    with_ip = Grant(("/v/",), NOW + 60, client_network=ipaddress.ip_network("203.0.113.0/24"))
    with_start = Grant(("/v/",), NOW + 60, NOW - 10)
    with pytest.raises(UnsupportedGrant, match="ip_binding"):
        dialect.sign(with_ip)
    with pytest.raises(UnsupportedGrant, match="not_before_binding"):
        dialect.sign(with_start)
    with pytest.raises(UnsupportedGrant, match="one URLPrefix"):
        dialect.sign(Grant(("/a/", "/b/"), NOW + 60))
    lenient = type(dialect)(**{**dialect.__dict__, "ip_binding": "best-effort", "not_before_binding": "best-effort"})
    assert lenient.sign(with_ip).query == dialect.sign(Grant(("/v/",), NOW + 60)).query
    assert lenient.sign(with_start).query == dialect.sign(Grant(("/v/",), NOW + 60)).query


def test_signature_must_be_last_and_unique() -> None:
    vector = VECTORS["cloud_cdn"]["signed_url"][0]
    dialect = product("cloud_cdn", origin(vector["url"]), "url")
    moved = vector["expected"] + "&x=1"
    assert denial(dialect, EdgeRequest(moved), now=0).reason is Denial.MALFORMED
    doubled = vector["expected"] + "&Signature=AAAA"
    assert denial(dialect, EdgeRequest(doubled), now=0).reason is Denial.MALFORMED


# -- Media CDN dual-token ------------------------------------------------------------------------------


def dual(algorithm: str, **table: Any) -> media_cdn_dualtoken.MediaCdnDualToken:
    field, key = ("private_key", DUAL["ed25519_key"]) if algorithm == "ed25519" else ("secret", DUAL["hmac_key"])
    keys = table.pop("keys", [{"name": "k1", field: key}])
    return media_cdn_dualtoken.from_config({"algorithm": algorithm, "keys": keys, **table}, base_dir=Path())


@pytest.mark.parametrize(
    "case", [c for c in DUAL["cases"] if not c.get("all_params")], ids=lambda c: c["expected"][:24]
)
def test_dualtoken_vectors_reproduce_and_verify(case: dict[str, Any]) -> None:
    expires, url = DUAL["expires"], "http://10.20.30.40/example.m3u8"
    if "url_prefix" in case:
        dialect = dual(case["algorithm"], path_field="url_prefix", base_url="http://10.20.30.40")
    elif "full_path" in case:
        dialect = dual(case["algorithm"], path_field="full_path")
    else:
        dialect = dual(case["algorithm"])
    signed = dialect.sign(Grant(("/",), expires), url=url if "full_path" in case else None)
    assert signed.token == case["expected"]
    request = EdgeRequest(url + "?edge-cache-token=" + case["expected"])
    assert dialect.verify(request, now=expires).expires_at == expires
    assert denial(dialect, request, now=expires + 1).reason is Denial.EXPIRED


@pytest.mark.parametrize("case", [c for c in DUAL["cases"] if c.get("all_params")], ids=lambda c: c["algorithm"])
def test_dualtoken_all_params_vectors_pass_the_signature_check(case: dict[str, Any]) -> None:
    """Headers are rebuilt from the request; the vector's IPv6 range '2001:db8:4a7f:a732/64' is not a valid
    network, so after the signature passes we refuse it as malformed (fail closed), naming IPRanges."""
    dialect = dual(case["algorithm"])
    headers = dict(DUAL["all_params"]["headers"])
    request = EdgeRequest("http://h/a.ts?edge-cache-token=" + case["expected"], headers=headers)
    refused = denial(dialect, request, now=DUAL["starts"] + 1)
    assert refused.reason is Denial.MALFORMED and refused.values["field"] == "IPRanges"
    wrong_header = EdgeRequest(request.url, headers={**headers, "Foo": "baz"})
    assert denial(dialect, wrong_header, now=DUAL["starts"] + 1).reason is Denial.BAD_SIGNATURE


def test_dualtoken_ip_ranges_session_and_data_round_trip() -> None:
    dialect = dual("ed25519")
    grant = Grant(("/live/ch1/",), NOW + 60, NOW - 60, ipaddress.ip_network("2001:db8::/48"), "sess-1", "user.42")
    token = dialect.sign(grant).token
    assert token is not None and "~SessionID=sess-1~Data=user.42~IPRanges=" in token
    url = "https://cdn.example.com/live/ch1/a.m4s?edge-cache-token=" + token
    inside, outside = ipaddress.ip_address("2001:db8:0:1::5"), ipaddress.ip_address("2001:db9::1")
    assert dialect.verify(EdgeRequest(url, client_ip=inside), now=NOW) == grant
    assert denial(dialect, EdgeRequest(url, client_ip=outside), now=NOW).reason is Denial.IP
    assert denial(dialect, EdgeRequest(url, client_ip=inside), now=NOW - 61).reason is Denial.NOT_YET_VALID


def test_dualtoken_several_ip_ranges_verify_to_the_one_the_client_is_in() -> None:
    """A Grant holds one network: of a token's several IPRanges it keeps the one that admitted the client,
    never none (a grant wider than its token would let anything re-signed from it drop the IP condition)."""
    import hashlib
    import hmac

    dialect = dual("sha256")
    ranges = b64url(b"203.0.113.0/24,2001:db8::/48", padded=False)
    signed = f"PathGlobs=/live/ch1/*~Expires={NOW + 60}~IPRanges={ranges}"
    key = dialect.keys[0].secret
    assert key is not None
    token = f"{signed}~hmac={hmac.new(key, signed.encode(), hashlib.sha256).hexdigest()}"
    url = "https://cdn.example.com/live/ch1/a.m4s?edge-cache-token=" + token
    for client, network in (("203.0.113.9", "203.0.113.0/24"), ("2001:db8:0:1::5", "2001:db8::/48")):
        grant = dialect.verify(EdgeRequest(url, client_ip=ipaddress.ip_address(client)), now=NOW)
        assert grant.client_network == ipaddress.ip_network(network)
    outside = EdgeRequest(url, client_ip=ipaddress.ip_address("198.51.100.1"))
    assert denial(dialect, outside, now=NOW).reason is Denial.IP


def test_dualtoken_keyset_rotation_and_algorithm_from_the_keyset() -> None:
    old, new = {"name": "old", "secret": DUAL["hmac_key"]}, {"name": "new", "secret": "A" * 43}
    token = dual("sha256", keys=[old]).sign(Grant(("/v/",), NOW + 60)).token
    url = f"https://h/v/a.ts?edge-cache-token={token}"
    assert dual("sha256", keys=[new, old]).verify(EdgeRequest(url), now=NOW).key_id == "old"
    assert denial(dual("sha256", keys=[new]), EdgeRequest(url), now=NOW).reason is Denial.BAD_SIGNATURE
    assert denial(dual("ed25519"), EdgeRequest(url), now=NOW).reason is Denial.MALFORMED  # hmac vs Signature


@pytest.mark.parametrize(
    ("module", "table", "message"),
    [
        (cloud_cdn, {"base_url": "https://h", "keys": [{"name": "bad name", "secret": "A" * 22}]}, "name"),
        (cloud_cdn, {"base_url": "https://h", "keys": [{"name": "k", "secret": "QUJD"}]}, "at least 16"),
        (media_cdn, {"base_url": "https://h", "keys": [{"name": "k", "private_key": "A" * 60}]}, "32 bytes"),
        (media_cdn, {"base_url": "https://h", "keys": [{"name": "k", "private_key": "A" * 43}], "form": "x"}, "form"),
        (
            media_cdn_dualtoken,
            {"keys": [{"name": "k", "secret": "A" * 43}], "algorithm": "sha256", "path_field": "url_prefix"},
            "base_url: is required",
        ),
    ],
)
def test_config_errors(module: Any, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        module.from_config(table, base_dir=Path())
    assert str(caught.value).startswith(f"[dialects.{module.NAME}]")


def test_ed25519_keys_load_from_pem_and_jwk(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    seed = bytes(range(32))
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    d, x = b64url(seed, padded=False), b64url(public, padded=False)
    jwk = f'{{"kty": "OKP", "crv": "Ed25519", "d": "{d}", "x": "{x}"}}'
    (tmp_path / "k.pem").write_text(pem)
    grant = Grant(("/v/",), NOW + 60)
    tokens = {
        media_cdn.from_config({"base_url": "https://h", "keys": [{"name": "k", **source}]}, base_dir=tmp_path)
        .sign(grant)
        .token
        for source in ({"private_key_file": "k.pem"}, {"private_key": jwk}, {"private_key": b64url(seed, padded=True)})
    }
    assert len(tokens) == 1  # Ed25519 is deterministic: the same key signs the same bytes
