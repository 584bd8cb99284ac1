"""CTA-5007-B claims: catm from the signing options, catif/catifdata and catdpop by policy, cattprint against
the TLS terminator's fingerprint header, no exp/nbf leeway by default, catu port/query/extension signing,
and unknown critical claims refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects.base import EdgeRequest, SigningOptions
from gateway.tokens.dialects.cat import CatDialect
from gateway.tokens.dialects.support import cat_claims as c
from gateway.tokens.dialects.support.cat_policy import ClaimPolicy
from tests.tokens.dialects_jwt_cat.support import NOW, cat_dialect, denial
from tests.tokens.dialects_jwt_cat.support import cat_grant as grant

SEGMENT = "https://cdn.example.com/vod/movie1/seg_001.ts"
JA4 = "t13d1516h2_8daaf6152771_b186095e22b6"
CAT = cat_dialect()


def token_with(dialect: CatDialect, **claims: Any) -> str:
    """A token MACed with the dialect's key carrying exp + iss and `claims` (labels as c_<label>)."""
    payload: c.Claims = {c.ISS: "gateway.example", c.EXP: NOW + 60}
    payload.update({int(name[2:]): value for name, value in claims.items()})
    return dialect.encode_claims(payload)


def request(token: str, url: str = SEGMENT, **kw: Any) -> EdgeRequest:
    headers = {"CTA-Common-Access-Token": token, **kw.pop("headers", {})}
    return EdgeRequest(url=url, headers=headers, **kw)


def refusal(dialect: CatDialect, req: EdgeRequest, now: float = NOW) -> TokenDenied:
    with pytest.raises(TokenDenied) as info:
        dialect.verify(req, now=now)
    return info.value


# --- catm (313) and cath (315) from SigningOptions ------------------------------------------------


def test_signing_method_binds_catm_and_verification_compares_the_request_method() -> None:
    signed = CAT.sign(grant(), options=SigningOptions(method="POST"))
    claims = CAT.verify_token(request(signed.token or "", method="POST"), now=NOW).claims
    assert claims[c.CATM] == ["POST"]  # replaces the configured ["GET", "HEAD"]
    denied = refusal(CAT, request(signed.token or "", method="GET"))
    assert denied.reason is Denial.SCOPE and denied.values == {"method": "GET"}
    assert denial(lambda: CAT.verify(request(signed.token or "", method="post"), now=NOW)) is Denial.SCOPE


def test_signing_headers_bind_cath_exact_matches() -> None:
    token = CAT.sign(grant(), options=SigningOptions(headers=(("X-Device", "tv-1"),))).token or ""
    assert CAT.verify(request(token, headers={"x-device": "tv-1"}), now=NOW)
    assert denial(lambda: CAT.verify(request(token, headers={"X-Device": "tv-2"}), now=NOW)) is Denial.SCOPE
    assert denial(lambda: CAT.verify(request(token), now=NOW)) is Denial.SCOPE


# --- catif (322) / catifdata (320) ----------------------------------------------------------------

CATIF = {c.EXP: [307, {"Location": "https://auth.example/login?r="}]}


def test_catif_is_ignored_by_default_and_never_widens_or_mints() -> None:
    token = token_with(CAT, c_322=CATIF, c_320="campaign-7")
    assert CAT.verify(request(token), now=NOW)
    # The condition it names (exp) still fails as itself: no redirect, no token minted from the template.
    assert denial(lambda: CAT.verify(request(token), now=NOW + 60)) is Denial.EXPIRED


@pytest.mark.parametrize(("claims", "name"), [({"c_322": CATIF}, "catif"), ({"c_320": ["a", "b"]}, "catifdata")])
def test_catif_policy_refuse_names_the_claim(claims: dict[str, Any], name: str) -> None:
    strict = cat_dialect(catif="refuse")
    denied = refusal(strict, request(token_with(strict, **claims)))
    assert denied.reason is Denial.MALFORMED and name in str(denied) and str(denied.values["claim"]).startswith(name)


def test_catif_listed_in_crit_is_refused_even_when_ignored() -> None:
    denied = refusal(CAT, request(token_with(CAT, c_322=CATIF, c_45=[c.CATIF])))
    assert denied.reason is Denial.MALFORMED and "catif (322)" in str(denied)


def test_catifdata_must_be_text() -> None:
    assert denial(lambda: CAT.verify(request(token_with(CAT, c_320=7)), now=NOW)) is Denial.MALFORMED


# --- catdpop (321) --------------------------------------------------------------------------------


def test_catdpop_is_refused_by_default_and_accepted_as_bearer_only_by_choice() -> None:
    dpop = {0: 300, 1: 1}
    denied = refusal(CAT, request(token_with(CAT, c_321=dpop, c_8={3: b"\x01" * 32})))
    assert denied.reason is Denial.MALFORMED and "catdpop (321)" in str(denied)
    lenient = cat_dialect(catdpop="ignore")
    assert lenient.verify(request(token_with(lenient, c_321=dpop)), now=NOW)
    critical = token_with(lenient, c_321=dpop, c_45=[c.CATDPOP])
    assert "catdpop" in str(refusal(lenient, request(critical)))


# --- cattprint (324) ------------------------------------------------------------------------------


def test_cattprint_is_checked_against_the_terminators_header() -> None:
    edge = cat_dialect(tls_fingerprint_headers={"ja4": "X-JA4", "ja3": "X-JA3-Hash"})
    token = token_with(edge, c_324={0: 2, 1: JA4})
    assert edge.verify(request(token, headers={"x-ja4": JA4.upper() + " "}), now=NOW)
    other = refusal(edge, request(token, headers={"X-JA4": "t13d1516h2_8daaf6152771_000000000000"}))
    assert other.reason is Denial.IP
    assert other.values == {"claim": "cattprint", "fingerprint_type": "ja4", "header": "X-JA4"}
    missing = refusal(edge, request(token, headers={"X-JA3-Hash": JA4}))
    assert missing.reason is Denial.IP and "X-JA4" in str(missing)
    # A type the deployment passes no header for cannot be checked: fail closed, never treat it as bearer.
    ja4h = token_with(edge, c_324={0: 4, 1: "ge11nn05enus_0000"})
    assert "ja4h" in str(refusal(edge, request(ja4h, headers={"X-JA4": JA4})))
    assert denial(lambda: CAT.verify(request(token, headers={"X-JA4": JA4}), now=NOW)) is Denial.IP


@pytest.mark.parametrize("value", [{0: 99, 1: JA4}, {0: 2}, {0: "JA4", 1: JA4}, {0: 2, 1: ""}, [2, JA4]])
def test_a_broken_cattprint_is_malformed(value: Any) -> None:
    edge = cat_dialect(tls_fingerprint_headers={"ja4": "X-JA4"})
    token = token_with(edge, c_324=value)
    assert denial(lambda: edge.verify(request(token, headers={"X-JA4": JA4}), now=NOW)) is Denial.MALFORMED


# --- exp / nbf: no leeway unless configured -------------------------------------------------------


def test_no_leeway_on_exp_and_nbf_by_default() -> None:
    assert CAT.leeway_seconds == 0
    token = token_with(CAT, c_4=NOW, c_5=NOW - 10)
    assert CAT.verify(request(token), now=NOW - 0.001)
    assert denial(lambda: CAT.verify(request(token), now=NOW)) is Denial.EXPIRED  # exp is exclusive
    early = token_with(CAT, c_5=NOW + 1)
    assert denial(lambda: CAT.verify(request(early), now=NOW)) is Denial.NOT_YET_VALID
    assert CAT.verify(request(early), now=NOW + 1)


def test_leeway_seconds_is_an_operator_setting() -> None:
    lenient = cat_dialect(leeway_seconds=30)
    token = token_with(lenient, c_4=NOW)
    assert lenient.verify(request(token), now=NOW + 29)
    assert denial(lambda: lenient.verify(request(token), now=NOW + 30)) is Denial.EXPIRED
    early = token_with(lenient, c_5=NOW + 30)
    assert lenient.verify(request(early), now=NOW)
    assert denial(lambda: lenient.verify(request(early), now=NOW - 1)) is Denial.NOT_YET_VALID
    with pytest.raises(ConfigError, match="leeway_seconds"):
        cat_dialect(leeway_seconds=-1)


# --- catu port, query and extension when signing --------------------------------------------------


def test_signing_emits_catu_port_query_and_extension_and_verification_enforces_them() -> None:
    dialect = cat_dialect(catu={"port": "8443", "query": "lang=en", "extension": {"suffix": "ts"}})
    token = dialect.sign(grant()).token or ""
    claims = dialect.verify_token(
        request(token, "https://cdn.example.com:8443/vod/movie1/seg_001.ts?lang=en&cat=x"), now=NOW
    ).claims
    assert list(c.claim_map(claims, c.CATU)) == [0, 1, 2, 3, 4, 8]  # component order, as CTA-5007 numbers them
    assert claims[c.CATU] == {
        0: {c.EXACT: "https"},
        1: {c.EXACT: "cdn.example.com"},
        2: {c.EXACT: "8443"},
        3: {c.PREFIX: "/vod/movie1/"},
        4: {c.EXACT: "lang=en"},
        8: {c.SUFFIX: "ts"},
    }
    for url, component in [
        ("https://cdn.example.com/vod/movie1/seg_001.ts?lang=en", "port"),
        ("https://cdn.example.com:8443/vod/movie1/seg_001.ts?lang=sv", "query"),
        ("https://cdn.example.com:8443/vod/movie1/seg_001.ts", "query"),
        ("https://cdn.example.com:8443/vod/movie1/index.m3u8?lang=en", "extension"),
    ]:
        denied = refusal(dialect, request(token, url))
        assert denied.reason is Denial.ACL and denied.values["component"] == component, url


@pytest.mark.parametrize(
    ("catu", "message"),
    [
        ({"path": "/x/"}, r"catu.path: set dialects.cat.scheme / host; the path is the grant's prefix"),
        ({"fragment": "x"}, r"unknown key 'fragment' in \[dialects.cat.catu\]"),
        ({"port": "https"}, r"catu.port: a port number"),
        ({"query": {"regex": "a"}}, r"catu.query: a string \(exact match\) or one of"),
        ({"extension": {"exact": ".ts", "suffix": "s"}}, "catu.extension"),
        ("port=1", r"dialects.cat.catu: a table"),
    ],
)
def test_catu_config_errors_name_the_field(catu: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cat_dialect(catu=catu)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"catif": "honour"}, "dialects.cat.catif"),
        ({"catdpop": "verify"}, "dialects.cat.catdpop"),
        ({"tls_fingerprint_headers": {"ja5": "X-JA5"}}, r"unknown key 'ja5' in dialects.cat.tls_fingerprint_headers"),
        ({"tls_fingerprint_headers": {"ja4": ""}}, r"tls_fingerprint_headers.ja4"),
        ({"tls_fingerprint_headers": "X-JA4"}, r"tls_fingerprint_headers: a table"),
    ],
)
def test_policy_config_errors_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cat_dialect(**table)


# --- crit (45) ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("critical", "named"),
    [(317, "catgeocoord (317)"), (314, "catalpn (314)"), (309, "catpor (309)"), (999, "999"), ("x-acme", "'x-acme'")],
)
def test_unknown_critical_claims_are_refused_by_name(critical: Any, named: str) -> None:
    denied = refusal(CAT, request(token_with(CAT, c_45=[c.CATU, critical])))
    assert denied.reason is Denial.MALFORMED and named in str(denied) and denied.values == {"claim": named}


def test_critical_claims_we_implement_pass() -> None:
    edge = cat_dialect(tls_fingerprint_headers={"ja4": "X-JA4"})
    token = token_with(edge, c_324={0: 2, 1: JA4}, c_313=["GET"], c_45=[c.CATTPRINT, c.CATM, c.EXP])
    assert edge.verify(request(token, headers={"X-JA4": JA4}), now=NOW)


def test_the_gateway_config_loads_the_5007b_settings_and_refuses_misspelt_ones(tmp_path: Path) -> None:
    base = (
        '[[routes]]\nmount = "/vod/"\norigin = "http://127.0.0.1:9/vod/"\nedge = "cat"\n'
        '[dialects.cat]\nissuer = "gateway.example"\ncatif = "refuse"\ncatdpop = "ignore"\n'
        'tls_fingerprint_headers = { ja4 = "X-JA4" }\n'
        '[[dialects.cat.keys]]\nkid = "Symmetric256"\nsecret = "' + "ab" * 32 + '"\n'
    )
    path = tmp_path / "gateway.toml"
    environ = {"GATEWAY_KEYS": "k1:" + "A" * 43}
    path.write_text(base + '[dialects.cat.catu]\nextension = ".ts"\n')
    dialect = load_settings(path, environ).dialects["cat"]
    assert isinstance(dialect, CatDialect)
    assert dialect.policy == ClaimPolicy("refuse", "ignore", (("ja4", "X-JA4"),))
    assert dialect.catu_matches == ((8, c.EXACT, ".ts"),)
    path.write_text(base + '[dialects.cat.catu]\nextention = ".ts"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'extention' in \[dialects.cat.catu\]"):
        load_settings(path, environ)
