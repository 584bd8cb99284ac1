"""Google's dialects and paths that need escaping, both directions, against Google's reference algorithm.

`google_reference` is anchored on every vector Google publishes (first tests below); the property tests then
generate paths with spaces, '+', '~', sub-delims and non-ASCII characters and check that the gateway's tokens
are what the reference makes for the same fields, that the reference's tokens (with the path spelt as a client
or a signer might: canonical, lower-case escapes, raw UTF-8) verify, and that tampered, expired and wrong-path
tokens are refused with the right reason."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied, UnsupportedGrant
from gateway.tokens.dialects import cloud_cdn, media_cdn, media_cdn_dualtoken
from gateway.tokens.dialects.base import EdgeRequest, SigningOptions
from gateway.tokens.dialects.support import google_paths
from gateway.tokens.dialects.support.cdn_request import encoded_prefix
from gateway.tokens.grant import Grant
from tests.tokens.dialects import google_reference as ref
from tests.tokens.dialects.dialect_helpers import HOST, NOW, load_vectors, prefixes

VECTORS = load_vectors("google_vectors.json")
DUAL = VECTORS["media_cdn_dualtoken"]
TOKEN = "edge-cache-token"

# Path segments with everything a title may carry that needs escaping somewhere: space, '+', '~', the glob
# field characters ',', '!', '*', '&', other sub-delims, and non-ASCII letters.
awkward = st.text(alphabet="abcXYZ019-_. +~,!*&'()=:@$éü日", min_size=1, max_size=8).filter(
    lambda s: s.strip(".") != "" and not s.endswith((".", " "))
)
awkward_prefixes = prefixes(awkward)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def denial(dialect: Any, request: EdgeRequest, now: float) -> Denial:
    with pytest.raises(TokenDenied) as caught:
        dialect.verify(request, now=now)
    return caught.value.reason


def lower_escapes(path: str) -> str:
    """The same path with lower-case hex escapes (a spelling some clients and signers use)."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "%":
            out.append(path[i : i + 3].lower())
            i += 3
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


# -- the reference reproduces every Google vector ------------------------------------------------------


@pytest.mark.parametrize("case", DUAL["cases"], ids=lambda c: c["expected"][:30])
def test_reference_dual_token_reproduces_googles_vectors(case: dict[str, Any]) -> None:
    key = DUAL["ed25519_key"] if case["algorithm"] == "ed25519" else DUAL["hmac_key"]
    fields: dict[str, Any] = {k: case[k] for k in ("path_globs", "url_prefix", "full_path") if k in case}
    if case.get("all_params"):
        extra = DUAL["all_params"]
        fields |= {
            "starts": DUAL["starts"],
            "session_id": extra["session_id"],
            "data": extra["data"],
            "headers": [tuple(pair) for pair in extra["headers"]],
            "ip_ranges": extra["ip_ranges"],
        }
    assert ref.dual_token(key, case["algorithm"], expires=DUAL["expires"], **fields) == case["expected"]


@pytest.mark.parametrize(("name", "algorithm"), [("cloud_cdn", "sha1"), ("media_cdn", "ed25519")])
def test_reference_signed_requests_reproduce_googles_vectors(name: str, algorithm: str) -> None:
    v = VECTORS[name]
    for case in v["signed_url"]:
        assert (
            ref.signed_url(case["url"], v["key_name"], v["key"], v["expires"], algorithm=algorithm) == case["expected"]
        )
    for case in v["signed_url_prefix"]:
        made = ref.signed_url_prefix(
            case["url"], case["prefix"], v["key_name"], v["key"], v["expires"], algorithm=algorithm
        )
        assert made == case["expected"]
    for case in v["signed_cookie"]:
        value = ref.signed_cookie_value(
            case["prefix"], v["key_name"], v["key"], v["expires"], algorithm=algorithm, strip=name == "media_cdn"
        )
        assert case["expected"].split("=", 1)[1] == value


# -- the pure path rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelt", "canonical"),
    [
        ("/vod/café/", "/vod/caf%C3%A9/"),
        ("/vod/caf%c3%a9/", "/vod/caf%C3%A9/"),
        ("/vod/a%7Eb/", "/vod/a~b/"),
        ("/vod/a b/", "/vod/a%20b/"),
        ("/vod/a%2Fb/", "/vod/a%2Fb/"),  # an escaped '/' stays escaped: it never matches a real '/'
        ("/vod/100%/", "/vod/100%25/"),
        ("/vod/a+b,c!d*e&f/", "/vod/a+b,c!d*e&f/"),
    ],
)
def test_canonical_spelling(spelt: str, canonical: str) -> None:
    assert google_paths.canonical(spelt) == canonical


def test_prefix_glob_escapes_the_field_characters() -> None:
    assert google_paths.prefix_glob("/vod/a~b,c!d*e&f/") == "/vod/a%7Eb%2Cc%21d%2Ae%26f/*"
    assert google_paths.prefix_glob(encoded_prefix("/vod/café +1/")) == "/vod/caf%C3%A9%20+1/*"


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("/vod/a%2Ab/*", "/vod/a*b/x.ts", True),  # %2A is a literal '*'
        ("/vod/a%2Ab/*", "/vod/aXb/x.ts", False),
        ("/vod/a*b/*", "/vod/aXb/x.ts", True),
        ("/vod/*.m3u8", "/vod/x/y/master.m3u8", True),  # '*' crosses '/'
        ("/vod/*.m3u8", "/vod/x/seg.ts", False),
        ("/vod/*/v1/*.ts", "/vod/t/v1/a.ts", True),
        ("/vod/title/*", "/vod/title-2/x", False),
        ("/vod/caf%c3%a9/*", "/vod/caf%C3%A9/x", True),
        ("/vod/a%2Fb/*", "/vod/a/b/x", False),
        ("/vod/x.ts", "/vod/x.ts", True),
        ("/vod/*a*a", "/vod/a", False),  # pieces may not overlap
    ],
)
def test_glob_matching(glob: str, path: str, matches: bool) -> None:
    assert google_paths.glob_matches(glob, path) is matches


def test_resource_globs_are_checked_and_spelt() -> None:
    assert google_paths.resource_glob("/vod/café/*.m3u8") == "/vod/caf%C3%A9/*.m3u8"
    assert google_paths.resource_glob("/vod/a~b/*") == "/vod/a%7Eb/*"
    for bad in ("vod/*", "/vod/../x/*", "/vod/x?y=1", "/vod//x/*"):
        with pytest.raises(UnsupportedGrant):
            google_paths.resource_glob(bad)


# -- dual token: generated paths, both directions -----------------------------------------------------


def dual(algorithm: str = "ed25519", **table: Any) -> media_cdn_dualtoken.MediaCdnDualToken:
    field, key = ("private_key", DUAL["ed25519_key"]) if algorithm == "ed25519" else ("secret", DUAL["hmac_key"])
    return media_cdn_dualtoken.from_config(
        {"algorithm": algorithm, "keys": [{"name": "k1", field: key}], **table}, base_dir=Path()
    )


def reference_key(algorithm: str) -> str:
    return str(DUAL["ed25519_key"] if algorithm == "ed25519" else DUAL["hmac_key"])


@PROPERTY
@given(prefix=awkward_prefixes, algorithm=st.sampled_from(["ed25519", "sha256", "sha1"]), expires=st.integers(0, 99))
def test_dual_token_paths_match_the_reference_both_ways(prefix: str, algorithm: str, expires: int) -> None:
    expires_at = NOW + 60 + expires
    dialect = dual(algorithm)
    encoded = encoded_prefix(prefix)
    signed = dialect.sign(Grant((prefix,), expires_at), url=f"{HOST}{encoded}seg-1.ts")
    glob = google_paths.prefix_glob(encoded)
    expected = ref.dual_token(reference_key(algorithm), algorithm, expires=expires_at, path_globs=glob)
    assert signed.token == expected
    # The query form carries the token verbatim, as Google's samples append it.
    assert signed.url == f"{HOST}{encoded}seg-1.ts?{TOKEN}={expected}"
    assert signed.query_string() == f"{TOKEN}={expected}"
    for spelling in (encoded, lower_escapes(encoded), quote(prefix, safe="/~")):
        request = EdgeRequest(f"{HOST}{spelling}seg-1.ts?{TOKEN}={expected}")
        assert dialect.verify(request, now=NOW).path_prefixes == (prefix,)
        assert denial(dialect, request, now=expires_at + 1) is Denial.EXPIRED
    sibling = EdgeRequest(f"{HOST}{encoded[:-1]}x/seg-1.ts?{TOKEN}={expected}")
    assert denial(dialect, sibling, now=NOW) is Denial.ACL
    tampered = EdgeRequest(f"{HOST}{encoded}seg-1.ts?{TOKEN}={expected.replace('Expires=', 'Expires=1')}")
    assert denial(dialect, tampered, now=NOW) is Denial.BAD_SIGNATURE


@PROPERTY
@given(prefix=awkward_prefixes)
def test_dual_token_reference_globs_in_other_spellings_verify(prefix: str) -> None:
    """A signer using Google's sample writes the glob as it likes: lower-case escapes, or only the field
    characters escaped. The signature is checked over those bytes; the path is matched canonically."""
    dialect = dual("sha256")
    encoded = encoded_prefix(prefix)
    glob = lower_escapes(google_paths.prefix_glob(encoded))
    token = ref.dual_token(DUAL["hmac_key"], "sha256", expires=NOW + 60, path_globs=glob)
    for spelling in (encoded, lower_escapes(encoded)):
        assert dialect.verify(EdgeRequest(f"{HOST}{spelling}a.m4s?{TOKEN}={token}"), now=NOW).expires_at == NOW + 60
        cookie = EdgeRequest(f"{HOST}{spelling}a.m4s", cookies={"Edge-Cache-Cookie": token})
        assert dual("sha256", delivery="cookie").verify(cookie, now=NOW).expires_at == NOW + 60


def test_the_cafe_cookie_is_accepted_and_its_expiry_is_expiry() -> None:
    """The defect of issue 11: `/vod/café/` was refused as its own cookie, and as bad_signature once expired."""
    dialect = dual("ed25519", delivery="cookie")
    signed = dialect.sign(Grant(("/vod/café/",), NOW + 60))
    cookie = signed.cookies[0]
    assert cookie.value.startswith("PathGlobs=/vod/caf%C3%A9/*~Expires=")
    request = EdgeRequest(f"{HOST}/vod/caf%C3%A9/master.m3u8", cookies={cookie.name: cookie.value})
    assert dialect.verify(request, now=NOW).path_prefixes == ("/vod/café/",)
    assert denial(dialect, request, now=NOW + 61) is Denial.EXPIRED


@PROPERTY
@given(prefix=awkward_prefixes)
def test_url_prefix_field_matches_raw_and_canonical_spellings(prefix: str) -> None:
    dialect = dual("ed25519", path_field="url_prefix", base_url=HOST)
    encoded = encoded_prefix(prefix)
    signed = dialect.sign(Grant((prefix,), NOW + 60))
    assert signed.token == ref.dual_token(DUAL["ed25519_key"], "ed25519", expires=NOW + 60, url_prefix=HOST + encoded)
    # The reference signing the prefix as raw UTF-8 or with lower-case escapes: both cover canonical requests.
    for spelt in (HOST + encoded, HOST + lower_escapes(encoded), HOST + prefix):
        token = ref.dual_token(DUAL["ed25519_key"], "ed25519", expires=NOW + 60, url_prefix=spelt)
        request = EdgeRequest(f"{HOST}{encoded}v1/seg.ts?{TOKEN}={token}")
        assert dialect.verify(request, now=NOW).path_prefixes == (prefix,)
        assert denial(dialect, request, now=NOW + 61) is Denial.EXPIRED
        wrong = EdgeRequest(f"{HOST}{encoded[:-1]}-other/seg.ts?{TOKEN}={token}")
        assert denial(dialect, wrong, now=NOW) is Denial.ACL


# -- dual token: the signing options ------------------------------------------------------------------


def test_start_time_and_signed_headers_match_the_reference_and_bind_the_request() -> None:
    dialect = dual("sha256")
    grant = Grant(("/live/ch1/",), NOW + 60, NOW - 10, session_id="s-1")
    options = SigningOptions(headers=(("X-Viewer", "v 42"), ("Referer", "https://app.example/")))
    token = dialect.sign(grant, options=options).token
    expected = ref.dual_token(
        DUAL["hmac_key"],
        "sha256",
        expires=NOW + 60,
        starts=NOW - 10,
        path_globs="/live/ch1/*",
        session_id="s-1",
        headers=options.headers,
    )
    assert token == expected and "~Headers=X-Viewer,Referer~" in expected
    url = f"{HOST}/live/ch1/a.ts?{TOKEN}={token}"
    headers = {"x-viewer": "v 42", "referer": "https://app.example/"}
    assert dialect.verify(EdgeRequest(url, headers=headers), now=NOW).session_id == "s-1"
    assert denial(dialect, EdgeRequest(url, headers={"x-viewer": "v 42"}), now=NOW) is Denial.MISSING
    assert denial(dialect, EdgeRequest(url, headers={**headers, "x-viewer": "v 43"}), now=NOW) is Denial.BAD_SIGNATURE
    assert denial(dialect, EdgeRequest(url, headers=headers), now=NOW - 11) is Denial.NOT_YET_VALID
    empty = url.replace("~Headers=X-Viewer,Referer~", "~Headers=X-Viewer,~")
    assert denial(dialect, EdgeRequest(empty, headers=headers), now=NOW) is Denial.MALFORMED


def test_custom_path_globs_up_to_five() -> None:
    dialect = dual("sha1")
    resources = ("/vod/t/*.m3u8", "/vod/t/v1/*", "/vod/a~b/*")
    token = dialect.sign(Grant(("/vod/t/",), NOW + 60), options=SigningOptions(resources=resources)).token
    glob = "/vod/t/*.m3u8,/vod/t/v1/*,/vod/a%7Eb/*"
    assert token == ref.dual_token(DUAL["hmac_key"], "sha1", expires=NOW + 60, path_globs=glob)
    for path in ("/vod/t/master.m3u8", "/vod/t/v1/seg.ts", "/vod/a~b/x.ts", "/vod/a%7eb/x.ts"):
        assert dialect.verify(EdgeRequest(f"{HOST}{path}?{TOKEN}={token}"), now=NOW).expires_at == NOW + 60
    assert denial(dialect, EdgeRequest(f"{HOST}/vod/t/v2/seg.ts?{TOKEN}={token}"), now=NOW) is Denial.ACL
    with pytest.raises(UnsupportedGrant, match="at most 5"):
        dialect.sign(Grant(("/v/",), NOW + 60), options=SigningOptions(resources=tuple(f"/v{i}/*" for i in range(6))))


def test_options_a_dual_token_cannot_express_are_refused() -> None:
    grant = Grant(("/v/",), NOW + 60)
    with pytest.raises(UnsupportedGrant, match="method"):
        dual().sign(grant, options=SigningOptions(method="GET"))
    with pytest.raises(UnsupportedGrant, match="cookie octet"):
        dual(delivery="cookie").sign(grant, options=SigningOptions(headers=(("A", "1"), ("B", "2"))))
    with pytest.raises(UnsupportedGrant, match="header name"):
        dual().sign(grant, options=SigningOptions(headers=(("A,B", "1"),)))
    with pytest.raises(UnsupportedGrant, match="resources"):
        dual(path_field="full_path").sign(grant, url=f"{HOST}/v/a.ts", options=SigningOptions(resources=("/v/*",)))
    # One header in a cookie is fine; several prefixes in a cookie are joined with '!' (',' is no cookie octet).
    cookie = dual(delivery="cookie").sign(
        Grant(("/a/", "/b/"), NOW + 60), options=SigningOptions(headers=(("X-A", "1"),))
    )
    assert cookie.cookies[0].value.startswith("PathGlobs=/a/*!/b/*~Expires=") and "," not in cookie.cookies[0].value


# -- Cloud CDN and Media CDN signed requests: URLPrefix spellings -------------------------------------


def signed_requests(name: str, form: str) -> Any:
    v = VECTORS[name]
    key_field = "secret" if name == "cloud_cdn" else "private_key"
    module = cloud_cdn if name == "cloud_cdn" else media_cdn
    table = {"base_url": HOST, "form": form, "keys": [{"name": v["key_name"], key_field: v["key"]}]}
    return module.from_config(table, base_dir=Path())


@PROPERTY
@given(prefix=awkward_prefixes, name=st.sampled_from(["cloud_cdn", "media_cdn"]))
def test_signed_url_prefix_paths_against_the_reference(prefix: str, name: str) -> None:
    v, algorithm = VECTORS[name], "sha1" if name == "cloud_cdn" else "ed25519"
    dialect = signed_requests(name, "url_prefix")
    encoded = encoded_prefix(prefix)
    url = f"{HOST}{encoded}v1/seg.ts"
    signed = dialect.sign(Grant((prefix,), NOW + 60), url=url)
    assert signed.url == ref.signed_url_prefix(
        url, HOST + encoded, v["key_name"], v["key"], NOW + 60, algorithm=algorithm
    )
    for spelt in (HOST + encoded, HOST + lower_escapes(encoded), HOST + prefix):
        theirs = ref.signed_url_prefix(url, spelt, v["key_name"], v["key"], NOW + 60, algorithm=algorithm)
        assert dialect.verify(EdgeRequest(theirs), now=NOW).path_prefixes == (prefix,)
        assert denial(dialect, EdgeRequest(theirs), now=NOW + 61) is Denial.EXPIRED
        assert denial(dialect, EdgeRequest(theirs.replace("Signature=", "Signature=A")), now=NOW) in (
            Denial.BAD_SIGNATURE,
            Denial.MALFORMED,
        )
    cookie = signed_requests(name, "cookie").sign(Grant((prefix,), NOW + 60)).cookies[0]
    assert cookie.value == ref.signed_cookie_value(
        HOST + encoded, v["key_name"], v["key"], NOW + 60, algorithm=algorithm, strip=name == "media_cdn"
    )
    request = EdgeRequest(f"{HOST}{lower_escapes(encoded)}a.ts", cookies={cookie.name: cookie.value})
    assert signed_requests(name, "cookie").verify(request, now=NOW).path_prefixes == (prefix,)


@pytest.mark.parametrize("name", ["cloud_cdn", "media_cdn"])
def test_signed_requests_take_one_custom_url_prefix_and_refuse_the_rest(name: str) -> None:
    dialect = signed_requests(name, "url_prefix")
    grant = Grant(("/vod/",), NOW + 60)
    signed = dialect.sign(grant, url=f"{HOST}/vod/caf%C3%A9/a.ts", options=SigningOptions(resources=("/vod/café/",)))
    assert signed.url is not None and dict(signed.query)["URLPrefix"] == ref._b64(
        f"{HOST}/vod/caf%C3%A9/".encode(), strip=False
    )
    assert dialect.verify(EdgeRequest(signed.url), now=NOW).path_prefixes == ("/vod/café/",)
    for options in (
        SigningOptions(resources=("/a/", "/b/")),
        SigningOptions(resources=("/a/*",)),
        SigningOptions(headers=(("X-A", "1"),)),
        SigningOptions(method="GET"),
    ):
        with pytest.raises(UnsupportedGrant):
            dialect.sign(grant, options=options)
    with pytest.raises(UnsupportedGrant):
        signed_requests(name, "url").sign(grant, url=f"{HOST}/vod/a.ts", options=SigningOptions(resources=("/vod/",)))


def test_ip_ranges_still_round_trip_with_headers() -> None:
    dialect = dual("ed25519")
    grant = Grant(("/v/",), NOW + 60, client_network=ipaddress.ip_network("2001:db8::/48"))
    token = dialect.sign(grant, options=SigningOptions(headers=(("X-A", "1"),))).token
    assert token is not None and "~Headers=X-A~IPRanges=" in token
    request = EdgeRequest(
        f"{HOST}/v/a.ts?{TOKEN}={token}", headers={"x-a": "1"}, client_ip=ipaddress.ip_address("2001:db8::1")
    )
    assert dialect.verify(request, now=NOW).client_network == grant.client_network
