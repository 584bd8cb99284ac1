"""What goes upstream (README "Edge and origin behaviour"): only allow-listed query parameters reach the
origin (and so the manifest cache key): the LL-HLS directives, a route's `forward_query`, never a token
parameter of any token system.

The rules are pure (`upstream_params`, `upstream_query`); the edge applies them to the raw query string.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.config_schema import DeltaUpdates
from gateway.errors import ConfigError
from gateway.http.dialect_edge import token_query_params
from gateway.http.request_facts import LL_HLS_PARAMS, upstream_params, upstream_query
from gateway.tokens.dialects import load_dialect
from tests.tokens.dialects.test_dialect_contract import CASES as CONTRACT_CASES
from tests.tokens.dialects.test_dialect_contract import Case, base_grant, signed
from tests.tokens.dialects.test_dialect_contract import dialect as contract_dialect

KEY = "k1:" + "A" * 43
PASS = upstream_params((), delta_updates=DeltaUpdates.PASS, token_params=("token",))


def test_ll_hls_directives_pass_in_the_clients_bytes_and_order() -> None:
    assert LL_HLS_PARAMS == ("_HLS_msn", "_HLS_part", "_HLS_skip")
    query = "_HLS_part=0&x=1&token=abc&_HLS_msn=0012&_HLS_skip=v2&utm_source=ad"
    assert upstream_query(query, PASS) == "_HLS_part=0&_HLS_msn=0012&_HLS_skip=v2"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "x=1",
        "token=abc",
        "_hls_msn=1",  # names are compared exactly, as the origin will read them
        "%5FHLS_msn=1",
        "_HLS_msnx=1",
        "_HLS_msn%3D1",
        "&&&",
        "=1",
    ],
)
def test_everything_else_is_dropped(query: str) -> None:
    assert upstream_query(query, PASS) == ""


def test_a_bare_allowed_name_keeps_its_bytes() -> None:
    assert upstream_query("_HLS_msn&x", PASS) == "_HLS_msn"
    assert upstream_query("_HLS_skip=YES&_HLS_skip=v2", PASS) == "_HLS_skip=YES&_HLS_skip=v2"


def test_delta_updates_full_drops_hls_skip() -> None:
    full = upstream_params((), delta_updates=DeltaUpdates.FULL, token_params=("token",))
    assert upstream_query("_HLS_msn=5&_HLS_skip=YES", full) == "_HLS_msn=5"


def test_a_route_forward_query_adds_names_but_never_a_token_parameter() -> None:
    allowed = upstream_params(
        ("quality", "v", "token", "cat"), delta_updates=DeltaUpdates.PASS, token_params=("token", "cat")
    )
    assert allowed == frozenset({"_HLS_msn", "_HLS_part", "_HLS_skip", "quality", "v"})
    assert upstream_query("v=3&token=t&quality=hd&cat=c&x=y", allowed) == "v=3&quality=hd"


NAMES = st.sampled_from(["_HLS_msn", "_HLS_part", "_HLS_skip", "token", "quality", "x", "utm", "_HLS_MSN"])
VALUES = st.text(alphabet=st.characters(codec="ascii", exclude_characters="&#"), max_size=8)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=8)


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in pairs)


@given(pairs=PAIRS, junk=PAIRS)
def test_junk_never_changes_what_goes_upstream(pairs: list[tuple[str, str]], junk: list[tuple[str, str]]) -> None:
    allowed = upstream_params(("quality",), delta_updates=DeltaUpdates.PASS, token_params=("token",))
    kept = [(n, v) for n, v in pairs if n in allowed]
    noise = [(n, v) for n, v in junk if n not in allowed]
    expected = _query(kept)
    assert upstream_query(_query(pairs), allowed) == expected  # the allowed pairs, in order, bytes as sent
    assert upstream_query(_query(noise + kept + noise), allowed) == expected
    assert upstream_query(expected, allowed) == expected  # idempotent
    assert "token=" not in upstream_query(_query(pairs), allowed).replace("_token=", "")


# --- configuration ------------------------------------------------------------------------------------------


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(body)
    return path


def test_forward_query_is_read_per_route(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        '[[routes]]\nmount = "/vod/"\norigin = "http://127.0.0.1:1/vod/"\nforward_query = ["quality", "v"]\n'
        '[[routes]]\nmount = "/live/"\norigin = "http://127.0.0.1:1/live/"\n',
    )
    routes = {route.mount: route for route in load_settings(path, {"GATEWAY_KEYS": KEY}).routes}
    assert routes["/vod/"].forward_query == ("quality", "v")
    assert routes["/live/"].forward_query == ()


@pytest.mark.parametrize(
    ("gateway_table", "route_extra", "env"),
    [
        ("", 'forward_query = "quality"', {}),  # a list of names
        ("", 'forward_query = ["a b"]', {}),
        ("", 'forward_query = ["a&b"]', {}),
        ("", 'forward_query = ["a=b"]', {}),
        ("", 'forward_query = [""]', {}),
        ("", "forward_query = [1]", {}),
        ("", 'forward_query = ["token"]', {}),  # the native token parameter
        ('token_param = "t"', 'forward_query = ["t"]', {}),
        ("", 'forward_query = ["tok"]', {"GATEWAY_TOKEN_PARAM": "tok"}),
        ('delta_updates = "full"', 'forward_query = ["_HLS_skip"]', {}),  # contradicts delta_updates
    ],
)
def test_bad_forward_query_fails_at_start_up_naming_the_setting(
    tmp_path: Path, gateway_table: str, route_extra: str, env: dict[str, str]
) -> None:
    path = config(
        tmp_path,
        f'[gateway]\n{gateway_table}\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:1/"\n{route_extra}\n',
    )
    with pytest.raises(ConfigError, match="forward_query"):
        load_settings(path, {"GATEWAY_KEYS": KEY, **env})


def test_a_dialects_token_parameters_are_never_forwarded(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        '[dialects.akamai]\nkey = "aabbccddeeff00112233445566778899"\ntoken_name = "hdnts"\n'
        '[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:1/"\nedge = "akamai"\nforward_query = ["hdnts"]\n',
    )
    with pytest.raises(ConfigError, match="forward_query"):
        load_settings(path, {"GATEWAY_KEYS": KEY})


def test_every_registered_dialect_names_its_query_parameters() -> None:
    # A new dialect must say which query parameters carry its token (so they are never forwarded).
    akamai = load_dialect("akamai", {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts"})
    assert token_query_params(akamai) == frozenset({"hdnts"})
    nginx = load_dialect("nginx_secure_link", {"secret": "s3cret", "hash_param": "h", "expires_param": "e"})
    assert token_query_params(nginx) == frozenset({"h", "e"})
    # Every dialect declares them: `Dialect.query_params` is part of the protocol (mypy checks each dialect)
    # and the contract cases below check the declared names against what each dialect signs.


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=lambda case: case.id)
def test_the_declared_names_cover_what_each_dialect_signs(case: Case) -> None:
    """Guards the table against drift: every query name a dialect puts on a URL is one it declares."""
    built = contract_dialect(case)
    credentials, _ = signed(case, base_grant(case))
    names = {name for name, _ in credentials.query}
    if credentials.url is not None:
        names |= {name for name, _ in parse_qsl(urlsplit(credentials.url).query, keep_blank_values=True)}
    assert names <= token_query_params(built)
