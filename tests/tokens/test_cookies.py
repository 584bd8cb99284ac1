"""The one cookie writer and reader: vendor values go out unquoted, byte for byte, or are refused by name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import UnsupportedCookie, UnsupportedGrant
from gateway.tokens.cookies import Cookie, cookie_pair, parse_cookie_header, parse_set_cookie

# Every vendor's cookie value holds '=' and '/' (SimpleCookie quoted exactly these).
VENDOR_VALUES = {
    "hdnts": "st=1700000000~exp=1700003600~acl=/hls/abc/*~hmac=eb5f9657a6886e37aa74d092ca591f0d215c48239cd822bc9ed81",
    "Cloud-CDN-Cookie": "URLPrefix=aHR0cDovLzM1LjE4Ni4yMzQuMzMvc2VnbWVudHMv:Expires=1566268009:KeyName=my-key"
    ":Signature=bF0QkNb0NPyzpYIE1rpC8Ja5r6s=",
    "Edge-Cache-Cookie": "PathGlobs=/vod/t/*~Expires=1700003600~KeyName=k1~Signature=abc-_",
    "CloudFront-Policy": "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMTExMTExYWJjZGVmOC5jbG91ZGZyb250Lm5ldC8q_",
}
COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')


@pytest.mark.parametrize(("name", "value"), VENDOR_VALUES.items())
def test_vendor_values_go_out_unquoted_byte_for_byte(name: str, value: str) -> None:
    header = Cookie(name, value, path="/vod/t/", expires_at=160).set_cookie(now=100)
    assert header == f"{name}={value}; Path=/vod/t/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
    parsed = parse_set_cookie(header)
    assert parsed is not None and (parsed.name, parsed.value) == (name, value)
    assert parse_cookie_header(f"other=1; {name}={value}; x=y") == {"other": "1", name: value, "x": "y"}


def test_attributes_domain_partitioned_and_no_max_age() -> None:
    cookie = Cookie("a", "b=c", domain="example.com", http_only=False, same_site="None", partitioned=True)
    assert cookie.set_cookie(now=0) == "a=b=c; Path=/; Domain=example.com; Secure; SameSite=None; Partitioned"
    assert "Max-Age=0;" in Cookie("a", "b", expires_at=5).set_cookie(now=10)  # past expiry: the browser deletes it


@pytest.mark.parametrize("bad", [" ", '"', ",", ";", "\\", "\x00", "\t", "\x7f", "é", "\u2028"])
def test_a_value_that_is_no_cookie_octet_string_is_refused_by_position(bad: str) -> None:
    value = "exp=1~acl=/v/" + bad + "~hmac=00"
    with pytest.raises(UnsupportedCookie) as raised:
        Cookie("hdnts", value)
    assert f"U+{ord(bad):04X}) at 13" in raised.value.detail and "hdnts" in raised.value.detail
    assert isinstance(raised.value, UnsupportedGrant) and raised.value.code == "unsupported_cookie"
    with pytest.raises(UnsupportedCookie):
        cookie_pair("hdnts", value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "a b"), ("name", "a=b"), ("name", ""), ("name", "é"), ("path", "/a;b"), ("domain", "x\r\ny")],
)
def test_names_and_attributes_that_would_split_the_header_are_refused(field: str, value: str) -> None:
    fields = {"name": "a", "value": "v", field: value}
    with pytest.raises(UnsupportedCookie):
        Cookie(**fields)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedCookie):
        Cookie("a", "v", same_site="lax")


@settings(max_examples=200, deadline=None, database=None)
@given(value=st.text(alphabet=COOKIE_OCTETS, max_size=200))
def test_every_cookie_octet_string_round_trips_through_writer_and_readers(value: str) -> None:
    header = Cookie("c", value, path="/p/").set_cookie(now=0)
    parsed = parse_set_cookie(header)
    assert parsed is not None and parsed.value == value and parsed.attributes["path"] == "/p/"
    if value and not (value[0] == value[-1] == '"'):  # '"' is no cookie-octet: never in a value
        assert parse_cookie_header(f"c={value}") == {"c": value}


@settings(max_examples=200, deadline=None, database=None)
@given(value=st.text(max_size=40))
def test_the_writer_either_refuses_or_writes_exactly_the_value(value: str) -> None:
    try:
        pair = cookie_pair("c", value)
    except UnsupportedCookie:
        assert any(not (0x21 <= ord(char) <= 0x7E) or char in '",;\\' for char in value)
    else:
        assert pair == "c=" + value


def test_reader_tolerates_quotes_from_older_writers_and_junk_beside_the_cookie() -> None:
    # What the SimpleCookie-based writer sent browsers: the value in quotes. '"' is never part of a valid value.
    assert parse_cookie_header('hdnts="exp=1~acl=/v/*~hmac=00"') == {"hdnts": "exp=1~acl=/v/*~hmac=00"}
    # Another site's malformed cookies (a space, no '=', an empty name) never hide the one that matters.
    header = "junk=a b; flag; =x; gw_token=abc=/d; gw_token=second"
    assert parse_cookie_header(header) == {"junk": "a b", "gw_token": "abc=/d"}  # the first of a name wins
    assert parse_cookie_header("") == {}


def test_set_cookie_reader_skips_what_a_browser_ignores() -> None:
    assert parse_set_cookie("no-equals-sign") is None
    assert parse_set_cookie("=value") is None
    assert parse_set_cookie("broken=\x00") is None
    parsed = parse_set_cookie('old="a=b/c"; Path=/x/; Max-Age=5; HttpOnly; SameSite=None; Secure; Partitioned')
    assert parsed is not None and parsed.value == "a=b/c"
    assert parsed.attributes == {
        "path": "/x/",
        "max-age": "5",
        "httponly": "",
        "samesite": "None",
        "secure": "",
        "partitioned": "",
    }
