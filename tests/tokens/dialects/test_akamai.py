"""Akamai EdgeAuth: byte-identical to `akamai-edgeauth` 0.3.2 (run in a subprocess), plus the edge's checks."""

from __future__ import annotations

import functools
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, Denial, TokenDenied
from gateway.tokens.dialects import akamai
from gateway.tokens.dialects.base import Credentials, EdgeRequest, SigningOptions
from gateway.tokens.dialects.support.cdn_request import UnsupportedGrant, encoded_prefix
from gateway.tokens.grant import Grant
from tests.support.tools import require_module
from tests.tokens.dialects.dialect_helpers import HOST, NOW, file_url, grants, load_vectors, networks

VECTORS = load_vectors("akamai_vectors.json")
KEY = VECTORS["key"]
REFERENCE = Path(__file__).with_name("akamai_reference.py")


def make(**table: Any) -> akamai.Akamai:
    return akamai.from_config({"key": KEY, **table}, base_dir=Path())


def reference_tokens(cases: list[dict[str, Any]]) -> list[str]:
    """All cases through the reference in ONE subprocess (it changes the process time zone on import)."""
    require_module("akamai.edgeauth")  # akamai-edgeauth==0.3.2, the test extra
    done = subprocess.run(
        [sys.executable, str(REFERENCE)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    tokens: list[str] = json.loads(done.stdout)
    return tokens


# -- published / worked vectors ------------------------------------------------------------------------


def vector_grant(case: dict[str, Any]) -> Grant:
    network = ipaddress.ip_network(case["ip"]) if "ip" in case else None
    prefixes = tuple(acl[:-1] for acl in case.get("acl", ["/hls/abc/*"]))
    return Grant(prefixes, case["end"], case["start"], network, case.get("session_id"), case.get("payload"))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["expected"][:20])
def test_dialects_md_vectors_reproduce_and_verify(case: dict[str, Any]) -> None:
    dialect, grant = make(**case["settings"]), vector_grant(case)
    url = HOST + case.get("url", "/hls/abc/seg.ts")
    if case["settings"].get("escape_early") or "url" not in case:
        assert dialect.sign(grant, url=url if "url" in case else None).token == case["expected"]
    else:  # raw ' ', '/', '=', '&' in id/data: the reference allows it; we refuse to sign it (see the module)
        with pytest.raises(UnsupportedGrant):
            dialect.sign(grant, url=url)
    header_dialect = make(**{**case["settings"], "delivery": "header"})
    request = EdgeRequest(url, headers={"__token__": case["expected"]}, client_ip=ipaddress.ip_address("203.0.113.7"))
    assert header_dialect.verify(request, now=case["end"] - 1).expires_at == case["end"]


def test_dialects_md_vectors_come_from_the_reference() -> None:
    cases = [{"key": KEY, **_reference_settings(c["settings"]), **_case_inputs(c)} for c in VECTORS["cases"]]
    assert reference_tokens(cases) == [case["expected"] for case in VECTORS["cases"]]


def _reference_settings(table: dict[str, Any]) -> dict[str, Any]:
    return {name: table[name] for name in ("algorithm", "escape_early", "salt") if name in table}


def _case_inputs(case: dict[str, Any]) -> dict[str, Any]:
    keys = ("start", "end", "ip", "session_id", "payload", "acl", "url")
    return {name: case[name] for name in keys if name in case and case[name] is not None}


# -- the reference, over many random grants and settings ----------------------------------------------

SETTINGS = st.fixed_dictionaries(
    {
        "algorithm": st.sampled_from(["sha256", "sha1", "md5"]),
        "token_type": st.sampled_from(["acl", "url"]),
        "escape_early": st.booleans(),
        "url_query": st.booleans(),
    },
    optional={"salt": st.sampled_from(["pepper", "s@lt 2"])},
)


@functools.lru_cache(maxsize=64)
def cached(items: tuple[tuple[str, Any], ...]) -> akamai.Akamai:
    return make(**dict(items))


def test_tokens_match_the_reference_over_random_grants() -> None:
    cases: list[dict[str, Any]] = []
    ours: list[str] = []

    @settings(max_examples=150, deadline=None, database=None)
    @given(
        grant=grants(
            max_prefixes=3, network=networks(None).map(lambda n: ipaddress.ip_network(n.network_address)), with_ids=True
        ),
        table=SETTINGS,
        query=st.sampled_from(["", "?x=1", "?a=b&c=d"]),
    )
    def collect(grant: Grant, table: dict[str, Any], query: str) -> None:
        dialect = cached(tuple(sorted(table.items())))
        url = file_url(grant) + query
        ours.append(dialect.sign(grant, url=url).token or "")
        path = encoded_prefix(grant.path_prefixes[0]) + "seg-1.ts" + (query if table["url_query"] else "")
        case: dict[str, Any] = {"key": KEY, "end": grant.expires_at, **_reference_settings(table)}
        case |= {"start": grant.not_before} if grant.not_before else {}
        case |= {"ip": str(grant.client_network.network_address)} if grant.client_network else {}
        case |= {"session_id": grant.session_id} if grant.session_id else {}
        case |= {"payload": grant.user_id} if grant.user_id else {}
        case |= (
            {"acl": [encoded_prefix(p) + "*" for p in grant.path_prefixes]}
            if table["token_type"] == "acl"
            else {"url": path}
        )
        cases.append(case)

    collect()
    theirs = reference_tokens(cases)
    mismatches = [(case, mine, ref) for case, mine, ref in zip(cases, ours, theirs, strict=True) if mine != ref]
    assert not mismatches, mismatches[:3]
    assert len(cases) >= 100


# -- delivery and the edge's decisions -----------------------------------------------------------------


def test_delivery_by_cookie_header_and_named_query() -> None:
    grant = Grant(("/vod/title-9000/",), NOW + 60)
    cookie = make(delivery="cookie", token_name="hdnts").sign(grant)
    assert cookie.cookies[0].name == "hdnts" and cookie.cookies[0].path == "/vod/title-9000/"
    header = make(delivery="header").sign(grant)
    assert header.headers == (("__token__", header.token),)
    query = make(token_name="hdnts").sign(grant)
    assert query.query == (("hdnts", query.token),)
    request = EdgeRequest(HOST + "/vod/title-9000/a.ts?" + query.query_string())
    assert make(token_name="hdnts").verify(request, now=NOW) == grant


def test_transition_key_verifies_and_is_reported() -> None:
    old, new = "00" * 16, "11" * 16
    grant = Grant(("/vod/t/",), NOW + 60)
    token = akamai.from_config({"key": old}, base_dir=Path()).sign(grant).query
    rotated = akamai.from_config({"key": new, "transition_key": old}, base_dir=Path())
    verified = rotated.verify(EdgeRequest(HOST + "/vod/t/a.ts?" + Credentials(query=token).query_string()), now=NOW)
    assert verified.key_id == "transition_key"
    retired = akamai.from_config({"key": new}, base_dir=Path())
    with pytest.raises(TokenDenied) as caught:
        retired.verify(EdgeRequest(HOST + "/vod/t/a.ts?" + Credentials(query=token).query_string()), now=NOW)
    assert caught.value.reason is Denial.BAD_SIGNATURE


def _verify(dialect: akamai.Akamai, token: str, path: str = "/hls/abc/a.ts", **extra: Any) -> Grant:
    return dialect.verify(EdgeRequest(HOST + path, headers={"__token__": token}, **extra), now=1700000001)


def test_edge_matches_acl_globs_and_ip() -> None:
    dialect = make(delivery="header")
    mac = dialect._mac(bytes.fromhex(KEY), "ip=198.51.100.1~exp=1700003600~acl=/hls/a?c/*.ts!/dash/*")
    token = f"ip=198.51.100.1~exp=1700003600~acl=/hls/a?c/*.ts!/dash/*~hmac={mac}"
    client = ipaddress.ip_address("198.51.100.1")
    # A Grant holds directory prefixes: '/dash/*' is one; '/hls/a?c/*.ts' is reported as the request itself.
    assert _verify(dialect, token, "/dash/x.mpd", client_ip=client).path_prefixes == ("/dash/",)
    assert _verify(dialect, token, client_ip=client).path_prefixes == ("/dash/", "/hls/abc/a.ts/")
    assert _verify(dialect, token, "/hls/aXc/x/y.ts", client_ip=client).path_prefixes[1] == "/hls/aXc/x/y.ts/"
    for path, reason in (
        ("/hls/abc/a.m3u8", Denial.ACL),
        ("/hls/abcd/a.ts", Denial.ACL),
        ("/dash/../hls/x", Denial.ACL),
    ):
        with pytest.raises(TokenDenied) as caught:
            _verify(dialect, token, path, client_ip=client)
        assert caught.value.reason is reason
    with pytest.raises(TokenDenied) as caught:
        _verify(dialect, token, "/dash/a.mpd", client_ip=ipaddress.ip_address("198.51.100.2"))
    assert caught.value.reason is Denial.IP


@pytest.mark.parametrize(
    "token",
    [
        "exp=1700003600~st=1700000000~acl=/*~hmac=" + "0" * 64,  # fields out of order
        "exp=1700003600~acl=/*~hmac=" + "A" * 64,  # uppercase hex
        "exp=1700003600~acl=/*~foo=1~hmac=" + "0" * 64,  # unknown field
        "exp=1700003600~acl=/*",  # no hmac
        "acl=/*~hmac=" + "0" * 64,  # no exp
    ],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(TokenDenied) as caught:
        _verify(make(delivery="header"), token)
    assert caught.value.reason is Denial.MALFORMED


def test_signing_refuses_what_travels_badly() -> None:
    with pytest.raises(UnsupportedGrant, match="single address"):
        make().sign(Grant(("/v/",), NOW + 60, client_network=ipaddress.ip_network("10.0.0.0/8")))
    assert "ip=" not in (
        make(ip_binding="best-effort")
        .sign(Grant(("/v/",), NOW + 60, client_network=ipaddress.ip_network("10.0.0.0/8")))
        .token
        or ""
    )
    # '&' would end the query parameter: the ACL carries it encoded (the edge matches the decoded path)
    assert "~acl=/v/a%26b/*~" in (make().sign(Grant(("/v/a&b/",), NOW + 60)).token or "")
    with pytest.raises(UnsupportedGrant, match="session_id"):
        make().sign(Grant(("/v/",), NOW + 60, session_id="a~b"))


def test_a_token_encoded_again_in_transit_is_still_judged_expired_when_expired() -> None:
    # acl=/vod/a%20b/* arrives as acl=/vod/a%2520b/* from a client that encodes query values: the raw form fails
    # the HMAC, the once-decoded form matches; then expiry is what is wrong, not the signature.
    token = make().sign(Grant(("/vod/a b/",), NOW + 60)).token or ""
    url = HOST + "/vod/a%20b/x.ts?__token__=" + quote(token, safe="=/*~")
    assert "%2520" in url
    assert make().verify(EdgeRequest(url), now=NOW).path_prefixes == ("/vod/a b/",)
    with pytest.raises(TokenDenied) as caught:
        make().verify(EdgeRequest(url), now=NOW + 61)
    assert caught.value.reason is Denial.EXPIRED


# -- signing options: start, window, session id, custom ACLs (issue 11.3) -------------------------------

OPTION_CASES: list[tuple[tuple[str, ...], str]] = [
    # (resources as an operator writes them, the ACL the token carries)
    (("/vod/title-9000/*",), "/vod/title-9000/*"),
    (("/vod/title-9000/*.m3u8", "/vod/title-9000/720p/*"), "/vod/title-9000/*.m3u8!/vod/title-9000/720p/*"),
    (("/vod/t?/seg-??.ts",), "/vod/t?/seg-??.ts"),
    (("/vod/café x/*",), "/vod/caf%C3%A9%20x/*"),
    (("/vod/caf%c3%a9%20x/*",), "/vod/caf%C3%A9%20x/*"),  # already encoded: read, then written canonically
    (("/vod/a~b!c&d/*",), "/vod/a%7Eb%21c%26d/*"),  # the token's delimiters and '&' cannot travel raw
]


@pytest.mark.parametrize(("resources", "acl"), OPTION_CASES)
def test_custom_acls_start_window_and_session_match_the_reference(resources: tuple[str, ...], acl: str) -> None:
    start, window = 1_700_000_000, 300
    grant = Grant(("/unused/",), start + window, start, session_id="sess-1")
    ours = make().sign(grant, options=SigningOptions(resources=resources)).token
    case = {"key": KEY, "start": start, "window": window, "session_id": "sess-1", "acl": acl.split("!")}
    assert ours == reference_tokens([case])[0]
    assert ours is not None and f"st={start}~exp={start + window}~acl={acl}~id=sess-1~" in ours


def test_custom_acl_wildcards_match_as_akamai_does() -> None:
    dialect = make(delivery="header")
    options = SigningOptions(resources=("/vod/t?/seg-??.ts", "/vod/café/*.m3u8", "/live/*"))
    token = dialect.sign(Grant(("/x/",), 1700003600), options=options).token or ""
    for path, reason in (
        ("/vod/t1/seg-01.ts", None),
        ("/vod/t1/seg-001.ts", Denial.ACL),  # '?' is exactly one character
        ("/vod/t12/seg-01.ts", Denial.ACL),
        ("/vod/caf%C3%A9/a/b/master.m3u8", None),  # '*' crosses '/'
        ("/vod/caf%c3%a9/x.m3u8", None),  # any spelling of the same path
        ("/vod/cafe/x.m3u8", Denial.ACL),
        ("/vod/caf%C3%A9/x.ts", Denial.ACL),
        ("/live/a/b/c.ts", None),
        ("/livex/a.ts", Denial.ACL),
    ):
        try:
            verified = _verify(dialect, token, path)
        except TokenDenied as denied:
            assert denied.reason is reason, path
        else:
            assert reason is None, path
            if path.startswith("/live/"):
                assert "/live/" in verified.path_prefixes  # '/live/*' is a directory prefix


def test_options_akamai_cannot_express_are_refused() -> None:
    grant = Grant(("/vod/t/",), NOW + 60)
    for options, message in (
        (SigningOptions(method="POST"), "method"),
        (SigningOptions(headers=(("X-A", "1"),)), "headers"),
        (SigningOptions(resources=("vod/*",)), "starting with '/'"),
        (SigningOptions(resources=("/vod/a%2Fb/*",)), "encoded '/'"),
        (SigningOptions(resources=('/vod/"q"/*',)), "quote"),
    ):
        with pytest.raises(UnsupportedGrant, match=message):
            make().sign(grant, options=options)
    with pytest.raises(UnsupportedGrant, match="resources"):  # a URL token signs the URL it is for
        make(token_type="url").sign(grant, url=HOST + "/vod/t/a.ts", options=SigningOptions(resources=("/vod/*",)))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"key": "abc"}, "key: must be an even-length hex"),
        ({"key": "00" * 8}, "at least 16"),
        ({"key": "00" * 16, "algorithm": "sha512"}, "algorithm: must be one of"),
        ({"key": "00" * 16, "field_delimiter": "="}, "field_delimiter"),
        ({"key_env": "NO_SUCH_AKAMAI_VAR"}, "NO_SUCH_AKAMAI_VAR"),
        ({"key": "00" * 16, "token_name": "a b"}, "token_name"),
    ],
)
def test_config_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        akamai.from_config(table, base_dir=Path())
    assert str(caught.value).startswith("[dialects.akamai]")


def test_repr_hides_keys_and_salt() -> None:
    text = repr(make(salt="pepper", transition_key="22" * 16))
    assert KEY not in text and "pepper" not in text and "22" * 16 not in text
