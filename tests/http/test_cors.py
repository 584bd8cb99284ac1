"""The pure CORS decision (gateway/http/cors.py), its `[cors]` configuration and cross-site cookie attributes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import SessionSettings, load_settings
from gateway.config_schema import SameSite
from gateway.errors import ConfigError
from gateway.http.cors import CorsPolicy, apply, check_origin, decide
from gateway.http.delivery import set_cookie

PLAYER = "https://player.example"
POLICY = CorsPolicy(frozenset({PLAYER, "http://localhost:8080"}))
KEY_ENV = {"GATEWAY_KEYS": "k1:" + "A" * 43, "GATEWAY_ORIGIN": "http://127.0.0.1:9/"}


def as_dict(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), f"one line per header: {headers}"
    return dict(headers)


def test_listed_origin_is_echoed_with_credentials_and_vary() -> None:
    answer = decide(POLICY, origin=PLAYER, method="GET")
    headers = as_dict(answer.headers)
    assert not answer.preflight
    assert headers["access-control-allow-origin"] == PLAYER
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["vary"] == "Origin"
    exposed = headers["access-control-expose-headers"].split(", ")
    assert {"x-token-denial", "x-gateway-error", "cta-common-access-token", "common-access-token"} <= set(exposed)


@pytest.mark.parametrize(
    "origin",
    [None, "https://evil.example", "null", "https://player.example.evil.example", "HTTPS://PLAYER.EXAMPLE", ""],
)
def test_unlisted_or_missing_origin_gets_star_and_no_credentials(origin: str | None) -> None:
    headers = as_dict(decide(POLICY, origin=origin, method="GET").headers)
    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers
    # Still Vary: the same URL answers a listed origin differently, and a cache must not mix the two.
    assert headers["vary"] == "Origin"
    assert "x-token-denial" in headers["access-control-expose-headers"]


def test_without_listed_origins_everything_is_star_and_nothing_varies() -> None:
    headers = as_dict(decide(CorsPolicy(), origin=PLAYER, method="GET").headers)
    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers and "vary" not in headers


@pytest.mark.parametrize(("origin", "credentialed"), [(PLAYER, True), ("https://evil.example", False)])
def test_preflight_lists_the_route_methods_and_the_headers_the_gateway_reads(origin: str, credentialed: bool) -> None:
    answer = decide(
        POLICY, origin=origin, method="OPTIONS", request_method="DELETE", route_methods=["DELETE", "GET", "HEAD"]
    )
    headers = as_dict(answer.headers)
    assert answer.preflight
    assert headers["access-control-allow-origin"] == (origin if credentialed else "*")
    assert ("access-control-allow-credentials" in headers) is credentialed
    assert headers["access-control-allow-methods"] == "DELETE, GET, HEAD"
    allowed = headers["access-control-allow-headers"].split(", ")
    assert {"authorization", "content-type", "range", "cta-common-access-token"} <= set(allowed)
    assert int(headers["access-control-max-age"]) > 0
    assert "access-control-expose-headers" not in headers  # preflights are never read by the page


def test_options_without_a_request_method_is_not_a_preflight() -> None:
    assert not decide(POLICY, origin=PLAYER, method="OPTIONS").preflight


@given(
    listed=st.frozensets(st.sampled_from([PLAYER, "http://localhost:8080", "http://127.0.0.1:9000"])),
    origin=st.one_of(st.none(), st.text(max_size=40), st.sampled_from([PLAYER, "null", "*", "http://localhost:8080"])),
    method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "OPTIONS"]),
    request_method=st.one_of(st.none(), st.sampled_from(["GET", "POST", "DELETE"])),
)
def test_credentials_never_with_star_and_never_for_an_unlisted_origin(
    listed: frozenset[str], origin: str | None, method: str, request_method: str | None
) -> None:
    headers = as_dict(decide(CorsPolicy(listed), origin=origin, method=method, request_method=request_method).headers)
    allow_origin = headers["access-control-allow-origin"]
    if "access-control-allow-credentials" in headers:
        assert allow_origin != "*" and allow_origin == origin and origin in listed
        assert headers["access-control-allow-credentials"] == "true"
    else:
        assert allow_origin == "*"
        assert origin not in listed


def test_apply_owns_the_cors_headers_and_merges_expose_and_vary() -> None:
    # A handler's stray `*`, a CAT renewal under a custom header name and an origin's Vary.
    raw = [
        (b"content-type", b"application/vnd.apple.mpegurl"),
        (b"access-control-allow-origin", b"*"),
        (b"Access-Control-Expose-Headers", b"CTA-Common-Access-Token, Common-Access-Token, X-My-Cat"),
        (b"vary", b"Accept-Encoding, origin"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    out = apply(POLICY, origin=PLAYER, method="GET", headers=raw)
    lines = [(name.decode(), value.decode()) for name, value in out]
    assert [value for name, value in lines if name == "set-cookie"] == ["a=1", "b=2"]  # untouched, in order
    assert [value for name, value in lines if name.lower() == "access-control-allow-origin"] == [PLAYER]
    assert ("access-control-allow-credentials", "true") in lines
    exposed = [value for name, value in lines if name.lower() == "access-control-expose-headers"]
    assert len(exposed) == 1 and exposed[0].endswith(", x-my-cat") and "x-token-denial" in exposed[0]
    assert [value for name, value in lines if name.lower() == "vary"] == ["Accept-Encoding, origin"]
    unlisted = dict(
        (n.decode(), v.decode()) for n, v in apply(POLICY, origin="https://x.example", method="GET", headers=raw)
    )
    assert unlisted["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in unlisted


@pytest.mark.parametrize(
    "origin", ["https://player.example", "http://localhost:8080", "http://127.0.0.1:9000", "http://[::1]:8080"]
)
def test_origins_as_browsers_send_them_are_accepted(origin: str) -> None:
    assert check_origin(origin) == origin


@pytest.mark.parametrize(
    ("origin", "complaint"),
    [
        ("*", "cannot be listed"),
        ("null", "cannot be listed"),
        ("https://player.example/", "no path"),
        ("https://player.example/app", "no path"),
        ("https://player.example?x=1", "no path"),
        ("https://user@player.example", "no path"),
        ("player.example", "scheme://host"),
        ("ftp://player.example", "scheme://host"),
        ("https://Player.example", "use 'https://player.example'"),
        ("https://player.example:443", "use 'https://player.example'"),
        ("https://player.example:99999", "invalid port"),
        ("https://*.example", "host must be"),
        ("https://plåyer.example", "host must be"),
    ],
)
def test_anything_else_is_refused_with_a_reason(origin: str, complaint: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_origin(origin)
    assert complaint in str(raised.value), str(raised.value)


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(body)
    return path


def test_config_table_and_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[cors]\nallowed_origins = ["https://player.example"]\n')
    assert load_settings(config, KEY_ENV).cors.allowed_origins == {PLAYER}
    assert load_settings(None, KEY_ENV).cors.allowed_origins == frozenset()
    env = {**KEY_ENV, "GATEWAY_CORS_ALLOWED_ORIGINS": " https://a.example, http://localhost:8080 ,"}
    assert load_settings(config, env).cors.allowed_origins == {"https://a.example", "http://localhost:8080"}


@pytest.mark.parametrize(
    ("body", "env", "message"),
    [
        ('[cors]\nallowed_origins = ["*"]\n', {}, "cors.allowed_origins: '*' cannot be listed"),
        ('[cors]\nallowed_origins = "https://player.example"\n', {}, "must be a list of origins"),
        (
            '[cors]\nallowed_origin = ["https://player.example"]\n',
            {},
            "unknown key 'allowed_origin' in [cors]; known: allowed_origins",
        ),
        ("", {"GATEWAY_CORS_ALLOWED_ORIGINS": "https://player.example/"}, "GATEWAY_CORS_ALLOWED_ORIGINS:"),
        ("[sessions]\ncookie_partitioned = true\n", {}, 'needs cookie_same_site = "None"'),
        ('[sessions]\ncookie_partitioned = "yes"\n', {}, "must be true or false"),
    ],
)
def test_config_errors_name_the_setting(tmp_path: Path, body: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write_config(tmp_path, body), {**KEY_ENV, **env})
    assert message in str(raised.value), str(raised.value)


def test_cross_site_cookie_attributes() -> None:
    def attributes(**kwargs: object) -> list[str]:
        value = set_cookie("gw_token", "t0k", path="/vod/t/", expires_at=160, now=100, **kwargs)  # type: ignore[arg-type]
        assert value.startswith("gw_token=t0k; ")
        return [part.strip() for part in value.split(";")[1:]]

    lax = attributes(secure=False, same_site=SameSite.LAX)
    assert "Secure" not in lax and "Partitioned" not in lax  # plain-HTTP localhost, same site
    none = attributes(secure=False, same_site=SameSite.NONE)
    assert {"Secure", "SameSite=None", "HttpOnly"} <= set(none) and "Partitioned" not in none
    chips = attributes(secure=False, same_site=SameSite.NONE, partitioned=True)
    assert {"Secure", "SameSite=None", "HttpOnly", "Partitioned", "Max-Age=60", "Path=/vod/t/"} <= set(chips)
    assert SessionSettings(cookie_same_site=SameSite.NONE, cookie_partitioned=True).cookie_partitioned
