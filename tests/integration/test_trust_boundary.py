"""The trust boundary (README "Edge and origin behaviour"), through a real uvicorn gateway (and a real
nginx in front of it).

1. The client address: a client reaching the gateway directly cannot choose its address with a
   forwarded header; behind nginx (`$proxy_add_x_forwarded_for`) a forged left-most entry changes nothing.
   Loopback has many addresses: the viewer connects from 127.0.0.2, nginx forwards from 127.0.0.3 (the
   only trusted proxy), so the three parties are told apart on one machine.
2. What goes upstream: only allow-listed query parameters, so junk costs neither origin fetches nor
   prepares, and LL-HLS directives reach the origin exactly as the player sent them.

The gateway is configured from a TOML file, as `serve --config` reads it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings, load_settings
from gateway.http.app import build_app
from gateway.http.writers import prepare_manifest
from gateway.manifests.template import PreparedManifest
from gateway.tokens.grant import Grant
from gateway.tokens.native import inspect_token, sign_grant
from tests.support.origin_tree import TITLE, build_origin_tree
from tests.support.servers import nginx_static, serve_app, static_origin

KEY = "k1:" + "A" * 43
VIEWER = "127.0.0.2"  # the viewer's real address
NGINX = "127.0.0.3"  # where nginx connects to the gateway from: the trusted proxy
FORGED = "203.0.113.66"


def gateway_settings(tmp: Path, origin: str) -> Settings:
    path = tmp / "gateway.toml"
    path.write_text(
        f"""
[gateway]
client_ip_header = "x-forwarded-for"
trusted_proxies = ["{NGINX}/32"]
[sessions]
ip_binding = true
[[routes]]
mount = "/"
origin = "{origin}"
forward_query = ["quality"]
[[users]]
credential = "viewer"
id = "u-1"
plan = "paid"
[[titles]]
prefix = "{TITLE}"
"""
    )
    return load_settings(path, {"GATEWAY_KEYS": KEY})


Stack = tuple[str, str, Settings, list[str]]  # gateway URL, nginx URL, settings, origin request log


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("trust")
    root = tmp / "origin"
    with static_origin(root) as (origin, seen):
        build_origin_tree(root, origin)
        settings = gateway_settings(tmp, origin)
        with serve_app(build_app(settings)) as gateway:
            proxy = f"""
location / {{
  proxy_pass {gateway};
  proxy_bind {NGINX};
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
}}"""
            with nginx_static(tmp / "unused", tmp / "nginx", extra_locations=proxy) as (nginx, _):
                yield gateway, nginx.rstrip("/"), settings, seen


def bound_token(settings: Settings, address: str) -> str:
    grant = Grant((TITLE,), int(time.time()) + 600, client_network=ipaddress.ip_network(f"{address}/32"))
    return sign_grant(grant, settings.keys)


def viewer() -> httpx.Client:
    """An HTTP client whose connections come from the viewer's address."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=VIEWER), timeout=10)


# --- 1. the client address -----------------------------------------------------------------------------------


def test_a_direct_client_cannot_choose_its_address_with_a_forwarded_header(stack: Stack) -> None:
    gateway, _, settings, _ = stack
    segment = f"{gateway}{TITLE}v1/seg_000.m4s?token="
    with viewer() as client:
        forged = client.get(segment + bound_token(settings, FORGED), headers={"x-forwarded-for": FORGED})
        assert (forged.status_code, forged.headers.get("x-token-denial")) == (403, "ip")
        own = client.get(segment + bound_token(settings, VIEWER), headers={"x-forwarded-for": FORGED})
        assert (own.status_code, own.headers.get("x-token-denial")) == (200, None)


def test_behind_nginx_a_forged_leftmost_entry_changes_nothing(stack: Stack) -> None:
    _, nginx, settings, _ = stack
    segment = f"{nginx}{TITLE}v1/seg_000.m4s?token="
    with viewer() as client:
        own = client.get(segment + bound_token(settings, VIEWER), headers={"x-forwarded-for": FORGED})
        assert (own.status_code, own.headers.get("x-token-denial")) == (200, None)
        forged = client.get(segment + bound_token(settings, FORGED), headers={"x-forwarded-for": FORGED})
        assert (forged.status_code, forged.headers.get("x-token-denial")) == (403, "ip")
        chained = client.get(segment + bound_token(settings, VIEWER), headers={"x-forwarded-for": f"{FORGED}, {NGINX}"})
        # A forged "trusted" hop is still left of the viewer's address, which nginx appends.
        assert (chained.status_code, chained.headers.get("x-token-denial")) == (200, None)


def test_sessions_bind_to_the_real_client_and_logs_name_it(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    gateway, nginx, _, _ = stack
    with viewer() as client:
        for base in (gateway, nginx):
            response = client.post(
                f"{base}/api/sessions",
                json={"asset": TITLE + "master.m3u8"},
                headers={"authorization": "Bearer viewer", "x-forwarded-for": FORGED},
            )
            assert response.status_code == 201, response.text
            assert str(inspect_token(response.json()["token"]).client_network) == f"{VIEWER}/32", base
        with caplog.at_level(logging.INFO, logger="gateway.http.errors"):
            client.get(f"{nginx}{TITLE}v1/seg_000.m4s", headers={"x-forwarded-for": FORGED})
    denial = next(r.getMessage() for r in caplog.records if "denied reason=missing" in r.getMessage())
    assert f"client={VIEWER}" in denial and FORGED not in denial


# --- 2. what goes upstream --------------------------------------------------------------------------------------


def test_a_thousand_junk_parameters_cost_one_origin_fetch_and_one_prepare(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, _, settings, seen = stack
    prepares = 0

    def counting_prepare(*args: object, **kwargs: object) -> PreparedManifest:
        nonlocal prepares
        prepares += 1
        return prepare_manifest(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("gateway.http.edge.prepare_manifest", counting_prepare)  # where the edge prepares
    token = bound_token(settings, "127.0.0.1")
    path = TITLE + "audio/en/index.m3u8"
    before = len(seen)
    with httpx.Client(timeout=10) as client:
        for n in range(1000):
            response = client.get(f"{gateway}{path}?x={n}&token={token}&utm_{n}=y")
            assert response.status_code == 200, response.text
    upstream = seen[before:]
    assert upstream == [path], upstream[:5]  # one fetch, with neither the junk nor the token
    assert prepares == 1


def test_ll_hls_directives_reach_the_origin_exactly_and_alone(stack: Stack) -> None:
    gateway, _, settings, seen = stack
    token = bound_token(settings, "127.0.0.1")
    before = len(seen)
    playlist = f"{gateway}{TITLE}v2/index.m3u8?_HLS_part=0&junk=1&token={token}&_HLS_msn=0012&_HLS_skip=YES&x"
    assert httpx.get(playlist).status_code == 200
    segment = f"{gateway}{TITLE}v2/seg_000.m4s?cachebuster=9&token={token}"
    assert httpx.get(segment).status_code == 200
    assert seen[before:] == [
        f"{TITLE}v2/index.m3u8?_HLS_part=0&_HLS_msn=0012&_HLS_skip=YES",
        f"{TITLE}v2/seg_000.m4s",
    ]


def test_a_routes_forward_query_reaches_the_origin(stack: Stack) -> None:
    gateway, _, settings, seen = stack
    token = bound_token(settings, "127.0.0.1")
    master = httpx.get(f"{gateway}{TITLE}master.m3u8?token={token}").text
    assert f"{TITLE}v2/index.m3u8?quality=hd&token=" in master  # the origin's own parameter, kept in the URI
    before = len(seen)
    url = f"{gateway}{TITLE}v2/index.m3u8?x=1&quality=hd&token={token}&quality=%20sd"
    assert httpx.get(url).status_code == 200
    assert seen[before:] == [f"{TITLE}v2/index.m3u8?quality=hd&quality=%20sd"]
