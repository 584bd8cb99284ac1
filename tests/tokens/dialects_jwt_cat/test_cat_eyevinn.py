"""CAT interop with @eyevinn/cat@0.16.4, an implementation that is not ours (one node process per module).

Ours → Eyevinn: `CAT.validate` accepts our tokens (and refuses them off-prefix / off-network), and its
`HttpValidator` renews them. Eyevinn → ours: tokens from `generateFromJson` (and its renewals) verify
here and give the grant they describe. Renewal both ways: the two renewals agree on every claim but cti.
"""

from __future__ import annotations

import ipaddress
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from hypothesis import given, settings

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import normalise_path
from gateway.tokens.dialects.base import EdgeRequest, SigningOptions
from gateway.tokens.dialects.cat import CatDialect
from gateway.tokens.dialects.support import cat_claims as c
from gateway.tokens.grant import Grant, Scope
from tests.tokens.dialects_jwt_cat.support import (
    CAT_KEY_HEX,
    DOC_TOKEN,
    NOW,
    EyevinnOracle,
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

CAT = cat_dialect()
ORIGIN = "https://cdn.example.com"
KEY = {"keyHex": CAT_KEY_HEX, "kid": "Symmetric256", "issuer": "gateway.example"}


def _encoded(prefix: str) -> str:
    """The canonical percent-encoding the gateway forwards and puts in catu (Eyevinn compares it raw)."""
    return normalise_path(quote(prefix, safe="/")).encoded


def _url(prefix: str, name: str = "seg_1.ts") -> str:
    return f"{ORIGIN}{_encoded(prefix)}{name}"


def _validate(token: str, url: str, now: float, ip: Any = None) -> dict[str, Any]:
    case = {"op": "validate", "token": token, "url": url, "nowMs": int(now * 1000), **KEY}
    return case | ({"ip": str(ip)} if ip is not None else {})


def test_eyevinn_accepts_the_worked_example(eyevinn: EyevinnOracle) -> None:
    ok, off = eyevinn.run(
        [
            _validate(DOC_TOKEN, f"{ORIGIN}/vod/movie1/seg_001.ts", 1767225700),
            _validate(DOC_TOKEN, f"{ORIGIN}/vod/movie2/seg_001.ts", 1767225700),
        ]
    )
    assert ok["ok"], ok
    assert ok["claims"]["catu"]["path"] == {"prefix-match": "/vod/movie1/"}
    assert ok["claims"]["cti"] == "0123456789abcdef0123456789abcdef"
    assert not off["ok"] and "not allowed" in off["error"]


@settings(max_examples=50, deadline=None)
@given(grants())
def test_eyevinn_validates_our_tokens(eyevinn: EyevinnOracle, original: Grant) -> None:
    token = CAT.sign(original).token or ""
    now = original.not_before if original.not_before is not None else NOW
    client = inside(original.client_network)
    cases = [
        _validate(token, _url(original.path_prefixes[0]), now, client),
        _validate(token, f"{ORIGIN}/elsewhere{_encoded(original.path_prefixes[0])}x.ts", now, client),
        _validate(token, _url(original.path_prefixes[0]), original.expires_at + 1, client),
    ]
    if original.client_network is not None:
        cases.append(_validate(token, _url(original.path_prefixes[0]), now, outside(original.client_network)))
    accepted, off_prefix, expired, *off_network = eyevinn.run(cases)
    assert accepted["ok"], (accepted, original)
    claims = accepted["claims"]
    assert claims["exp"] == original.expires_at and claims.get("nbf") == original.not_before
    assert claims.get("sub") == original.user_id and claims["catv"] == 1 and claims["catm"] == ["GET", "HEAD"]
    if original.client_network is not None:
        (network,) = claims["catnip"]
        assert ipaddress.ip_network(network) == original.client_network
    assert not off_prefix["ok"] and not expired["ok"]
    assert all(not result["ok"] for result in off_network)


def test_eyevinn_needs_full_catnip_bytes_which_is_why_they_are_the_default(eyevinn: EyevinnOracle) -> None:
    network = ipaddress.ip_network("10.20.0.0/16")
    full = CAT.sign(grant(client_network=network)).token or ""
    trimmed = cat_dialect(catnip_encoding="rfc9164").sign(grant(client_network=network)).token or ""
    url, client = _url("/vod/movie1/"), ipaddress.ip_address("10.20.1.2")
    full_result, trimmed_result = eyevinn.run([_validate(full, url, NOW, client), _validate(trimmed, url, NOW, client)])
    assert full_result["ok"]
    assert not trimmed_result["ok"]  # Eyevinn cannot read RFC 9164's trailing-zero-free prefix form


def _eyevinn_json(original: Grant, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": "gateway.example", "exp": original.expires_at}
    if original.not_before is not None:
        claims["nbf"] = original.not_before
    if original.user_id is not None:
        claims["sub"] = original.user_id
    claims["catu"] = {"path": {"prefix-match": _encoded(original.path_prefixes[0])}}
    if original.client_network is not None:
        claims["catnip"] = [str(original.client_network)]
    return claims | extra


@settings(max_examples=50, deadline=None)
@given(grants())
def test_we_verify_eyevinn_tokens_and_read_the_same_grant(eyevinn: EyevinnOracle, original: Grant) -> None:
    (generated,) = eyevinn.run([{"op": "generate", "claims": _eyevinn_json(original), "nowMs": NOW * 1000, **KEY}])
    token = generated["token"]
    now = original.not_before if original.not_before is not None else NOW
    request = EdgeRequest(
        url=_url(original.path_prefixes[0]),
        headers={"cta-common-access-token": token},
        client_ip=inside(original.client_network),
    )
    verified = CAT.verify(request, now=now)
    assert verified == original and verified.key_id == "Symmetric256"


def _renewed_token(result: dict[str, Any], via: str) -> str:
    headers = result["headers"]
    if via == "header":
        return str(headers["cta-common-access-token"])
    if via == "cookie":
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(str(headers["set-cookie"]).rstrip("; "))
        return cookie["cta-common-access-token"].value
    return parse_qs(urlsplit(str(headers["location"])).query)["cat"][0]


def _request(token: str, via: str, url: str) -> EdgeRequest:
    if via == "header":
        return EdgeRequest(url=url, headers={"CTA-Common-Access-Token": token})
    if via == "cookie":
        return EdgeRequest(url=url, cookies={"CTA-Common-Access-Token": token})
    return EdgeRequest(url=f"{url}?cat={token}")


def _claims_but_cti(dialect: CatDialect, token: str, url: str, now: float) -> dict[Any, Any]:
    claims = dict(dialect.verify_token(_request(token, "header", url), now=now).claims)
    claims.pop(c.CTI)
    return {key: claims[key] for key in sorted(claims, key=str)}


def test_renewal_round_trip_ours_and_eyevinns_agree(eyevinn: EyevinnOracle) -> None:
    original = doc_grant()
    token = CAT.issue(original, issued_at=1767225600)
    url = f"{ORIGIN}/vod/movie1/seg_001.ts"
    now = original.expires_at - 30  # inside the 60 s deadline window
    cases = [
        {"op": "http", "token": token, "via": via, "url": url, "method": "GET", "nowMs": now * 1000, **KEY}
        for via in ("header", "cookie", "query")
    ]
    cases.append({**cases[0], "method": "POST"})
    *renewals, post = eyevinn.run(cases)
    assert post["status"] == 401 and "POST" in post["message"]
    ours_to_check = []
    for via, theirs in zip(("header", "cookie", "query"), renewals, strict=True):
        ours = CAT.renew(CAT.verify_token(_request(token, via, url), now=now), now=now)
        assert ours is not None
        assert theirs["status"] == ours.status == (302 if via == "query" else 200), (via, theirs)
        their_token = _renewed_token(theirs, via)
        assert _claims_but_cti(CAT, their_token, url, now) == _claims_but_cti(CAT, ours.token, url, now)
        assert CAT.verify_token(_request(their_token, "header", url), now=now).claims[c.EXP] == now + 120
        header_names = {name.lower() for name, _ in ours.headers}
        assert {"header": "cta-common-access-token", "cookie": "set-cookie", "query": "location"}[via] in header_names
        ours_to_check.append(_validate(ours.token, url, now + 100))
    assert all(result["ok"] for result in eyevinn.run(ours_to_check))


def test_we_renew_eyevinn_tokens_and_eyevinn_accepts_the_renewal(eyevinn: EyevinnOracle) -> None:
    original = grant(expires_at=NOW + 90, client_network=ipaddress.ip_network("2001:db8::/32"))
    claims = _eyevinn_json(original, catr={"type": "header", "expadd": 300, "deadline": 120}, cti="c0ffee" * 4)
    (generated,) = eyevinn.run([{"op": "generate", "claims": claims, "nowMs": NOW * 1000, **KEY}])
    client = ipaddress.ip_address("2001:db8::1")
    request = EdgeRequest(
        url=_url("/vod/movie1/"), headers={"Common-Access-Token": generated["token"]}, client_ip=client
    )
    verified = CAT.verify_token(request, now=NOW)
    assert verified.grant == original and verified.claims[c.CTI] == bytes.fromhex("c0ffee" * 4)
    renewed = CAT.renew(verified, now=NOW)
    assert renewed is not None and renewed.expires_at == NOW + 300
    (result,) = eyevinn.run([_validate(renewed.token, _url("/vod/movie1/"), NOW + 200, client)])
    assert result["ok"], result
    assert result["claims"]["exp"] == NOW + 300 and result["claims"]["cti"] != "c0ffee" * 4
    assert result["claims"]["catr"] == {"type": "header", "expadd": 300, "deadline": 120}


def test_eyevinn_renewal_corrupts_private_claims_and_we_refuse_the_result(eyevinn: EyevinnOracle) -> None:
    # Our session-id / scope claims (labels < -65536) validate at Eyevinn, but its renewal re-encodes claims
    # by name and writes them under a NaN key: the renewed token must fail closed here, never half-parse.
    token = CAT.sign(grant(session_id="s-1", scope=Scope.MEDIA)).token or ""
    url = _url("/vod/movie1/")
    now = NOW + 570
    case = {"op": "http", "token": token, "via": "header", "url": url, "nowMs": now * 1000, **KEY}
    validated, renewed = eyevinn.run([_validate(token, url, now), case])
    assert validated["ok"] and validated["claims"]["-65537"] == "s-1"
    assert renewed["status"] == 200
    their_token = _renewed_token(renewed, "header")
    assert denial(lambda: CAT.verify(_request(their_token, "header", url), now=now)) is Denial.MALFORMED


# --- CTA-5007-B: catm, catu port/query/extension, catif, catdpop (issue 11.4) ----------------------

PORTED = f"{ORIGIN}:8443/vod/movie1/seg_001.ts?lang=en"


def test_eyevinn_enforces_the_catm_and_catu_matches_we_sign(eyevinn: EyevinnOracle) -> None:
    dialect = cat_dialect(catu={"port": "8443", "query": "lang=en", "extension": ".ts"})
    token = dialect.sign(grant(), options=SigningOptions(method="GET")).token or ""
    off = [
        f"{ORIGIN}/vod/movie1/seg_001.ts?lang=en",  # no port: Eyevinn's port is "" (as ours)
        f"{ORIGIN}:8443/vod/movie1/seg_001.ts?lang=sv",
        f"{ORIGIN}:8443/vod/movie1/index.m3u8?lang=en",
    ]
    results = eyevinn.run([_validate(token, url, NOW) for url in [PORTED, *off]])
    assert results[0]["ok"], results[0]
    assert results[0]["claims"]["catm"] == ["GET"]
    assert results[0]["claims"]["catu"]["port"] == {"exact-match": "8443"}
    assert not any(result["ok"] for result in results[1:]), results
    http = {"op": "http", "token": token, "via": "header", "url": PORTED, "nowMs": NOW * 1000, **KEY}
    get, head = eyevinn.run([http | {"method": "GET"}, http | {"method": "HEAD"}])
    assert get["status"] == 200, get
    assert head["status"] == 401 and "HEAD" in head["message"], head
    # Ours judges the same requests the same way.
    assert dialect.verify(EdgeRequest(PORTED, headers={"CTA-Common-Access-Token": token}), now=NOW)
    for url in off:
        request = EdgeRequest(url, headers={"CTA-Common-Access-Token": token})
        assert denial(lambda request=request: dialect.verify(request, now=NOW)) is Denial.ACL
    head_request = EdgeRequest(PORTED, headers={"CTA-Common-Access-Token": token}, method="HEAD")
    assert denial(lambda: dialect.verify(head_request, now=NOW)) is Denial.SCOPE


def test_we_judge_eyevinn_tokens_with_catm_catu_catif_and_catdpop(eyevinn: EyevinnOracle) -> None:
    claims = _eyevinn_json(grant()) | {
        "catm": ["GET"],
        "catifdata": "campaign-7",
        "catif": {"exp": [307, {"Location": "https://auth.example/login?r="}, "Symmetric256"]},
    }
    claims["catu"] |= {
        "port": {"exact-match": "8443"},
        "query": {"exact-match": "lang=en"},
        "extension": {"exact-match": ".ts"},
    }
    dpop = _eyevinn_json(grant()) | {"catadpop": {"0": 300}}  # Eyevinn's name for catdpop (321)
    made, made_dpop = eyevinn.run([{"op": "generate", "claims": x, "nowMs": NOW * 1000, **KEY} for x in (claims, dpop)])
    headers = {"CTA-Common-Access-Token": made["token"]}
    verified = CAT.verify_token(EdgeRequest(PORTED, headers=headers), now=NOW)
    assert verified.claims[c.CATM] == ["GET"] and verified.claims[c.CATIFDATA] == "campaign-7"
    assert set(c.claim_map(verified.claims, c.CATU)) == {2, 3, 4, 8}
    post = EdgeRequest(PORTED, headers=headers, method="POST")
    assert denial(lambda: CAT.verify(post, now=NOW)) is Denial.SCOPE
    elsewhere = EdgeRequest(PORTED.replace(":8443", ":9443"), headers=headers)
    assert denial(lambda: CAT.verify(elsewhere, now=NOW)) is Denial.ACL
    # Eyevinn answers an expired token carrying catif with the issuer's redirect; we refuse it as expired.
    (late,) = eyevinn.run(
        [{"op": "http", "token": made["token"], "via": "header", "url": PORTED} | KEY | {"nowMs": (NOW + 601) * 1000}]
    )
    assert late["status"] == 307 and late["headers"]["location"].startswith("https://auth.example/login?r="), late
    assert denial(lambda: CAT.verify(EdgeRequest(PORTED, headers=headers), now=NOW + 601)) is Denial.EXPIRED
    refusing = cat_dialect(catif="refuse")
    assert "catif" in str(_refusal(lambda: refusing.verify(EdgeRequest(PORTED, headers=headers), now=NOW)))
    dpop_request = EdgeRequest(_url("/vod/movie1/"), headers={"CTA-Common-Access-Token": made_dpop["token"]})
    assert "catdpop (321)" in str(_refusal(lambda: CAT.verify(dpop_request, now=NOW)))
    assert cat_dialect(catdpop="ignore").verify(dpop_request, now=NOW)


def _refusal(call: Any) -> TokenDenied:
    try:
        call()
    except TokenDenied as refused:
        return refused
    raise AssertionError("expected TokenDenied")
