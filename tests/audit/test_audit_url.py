"""`gateway audit --url` against real servers on 127.0.0.1: the demo (deliberately permissive) reports the
failures it has; a gateway that trusts its auditor's address and a leaky front are caught; a dead URL is exit 2."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.cli import main
from gateway.dev.demo import DEMO_MODES, DEMO_USERS, LIVE_MODES, build_demo, build_demo_origin, demo_settings
from gateway.http.app import build_app
from tests.audit.test_audit_checks import AKAMAI, CLOUDFRONT, HARDENED, K1, settings_from
from tests.support.servers import serve_app, unaccepting_port

KEY = f"k1:{K1}"
COOKIE_ASSET = "/cookie/vod/title-9000/master.m3u8"


def demo_config(origin_url: str) -> str:
    """The demo's settings (gateway/dev/demo.py) as a config file, so the audit knows its key and viewers."""
    vod, live = f"{origin_url}/vod/", f"{origin_url}/live/"
    routes = [(mount, vod, mode) for mode, mount in DEMO_MODES] + [(mount, live, mode) for mode, mount in LIVE_MODES]
    lines = [f'[keys]\nring = "{KEY}"\n']
    lines += [f'[[routes]]\nmount = "{m}"\norigin = "{o}"\ndelivery = "{d.value}"\n' for m, o, d in routes]
    lines += [
        f'[[users]]\ncredential = "{credential}"\nid = "{viewer.user_id}"\ncountry = "{viewer.country}"\n'
        for credential, viewer in DEMO_USERS.items()
    ]
    return "\n".join(lines)


def build_demo_gateway(state: Path, origin_url: str) -> Starlette:
    return build_demo(state, f"{origin_url}/", environ={"GATEWAY_KEYS": KEY})


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The demo gateway and its origin on 127.0.0.1, and a config file describing them."""
    state = tmp_path_factory.mktemp("demo")
    with serve_app(build_demo_origin()) as origin_url, serve_app(build_demo_gateway(state, origin_url)) as gateway_url:
        config = state / "demo.toml"
        config.write_text(demo_config(origin_url))
        yield gateway_url, config


def audit_json(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = main(["audit", *args, "--json"])
    return status, json.loads(capsys.readouterr().out)


def not_passing(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    findings = report["findings"]
    return {(f["item"], f["status"], f["setting"]) for f in findings if f["status"] != "pass"}


def test_the_demo_reports_the_failures_it_has(
    demo: tuple[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_KEYS", raising=False)
    url, config = demo
    args = ("--config", str(config), "--url", url, "--credential", "demo-paid", "--asset", COOKIE_ASSET)
    status, report = audit_json(*args, capsys=capsys)
    assert status == 1
    assert not_passing(report) == {
        ("origin_protection", "fail", "[origin] auth_secret (GATEWAY_ORIGIN_SECRET)"),
        ("ip_binding", "warn", "[sessions] ip_binding"),
        ("key_rotation", "warn", "GATEWAY_KEYS / [keys] ring"),
        # the demo page's catalog hands every visitor the demo viewers' credentials
        ("front_end_secrets", "fail", "GET /api/demo/catalog (200)"),
        # and the page names one in its test-hook hint
        ("front_end_secrets", "fail", "GET / (200)"),
        ("front_end_secrets", "fail", "GET /players/index.html (200)"),
        # plain HTTP on 127.0.0.1: the gateway leaves Secure off its cookie
        ("cookies", "fail", "Set-Cookie gw_token from POST /api/sessions"),
        ("cookies", "fail", "Set-Cookie gw_token from POST /api/sessions/{id}/refresh"),
    }
    findings = {(f["item"], f["setting"]): f for f in report["findings"]}
    catalog = findings[("front_end_secrets", "GET /api/demo/catalog (200)")]
    assert "[[users]] credential of u-paid" in catalog["summary"]
    assert (
        "no Secure (served over plain HTTP"
        in findings[("cookies", "Set-Cookie gw_token from POST /api/sessions")]["summary"]
    )
    assert findings[("front_end_secrets", "GET /_gateway/verdict")]["status"] == "pass"
    assert findings[("front_end_secrets", "error answers")]["status"] == "pass"


def test_a_hardened_gateway_passes_the_probe_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No false alarm from a real gateway: its pages, verdict endpoint and error answers give nothing away."""
    monkeypatch.delenv("GATEWAY_KEYS", raising=False)
    settings = settings_from(HARDENED + AKAMAI + CLOUDFRONT, tmp_path)
    with serve_app(build_app(settings)) as url:
        status, report = audit_json("--config", str(tmp_path / "gateway.toml"), "--url", url, capsys=capsys)
    assert not_passing(report) == set()
    assert status == 0
    settings_checked = {f["setting"] for f in report["findings"]}
    assert {"front-end pages", "GET /_gateway/verdict", "error answers"} <= settings_checked


def test_a_gateway_trusting_its_auditor_answers_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """trusted_proxies = 127.0.0.0/8 is private, so the config check lets it pass: only the probe sees that
    the verdict endpoint answers this caller. Its sessions also outlive what the audited config says."""
    monkeypatch.delenv("GATEWAY_KEYS", raising=False)
    settings = demo_settings(tmp_path, "http://127.0.0.1:9/", environ={"GATEWAY_KEYS": KEY}, token_ttl_seconds=1800)
    settings = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    config = tmp_path / "gateway.toml"
    config.write_text(demo_config("http://127.0.0.1:9"))  # says nothing of TTLs: 300 s
    session = ("--credential", "demo-paid", "--asset", "/vod/free-trailer/master.m3u8")
    with serve_app(build_app(settings)) as url:
        status, report = audit_json("--config", str(config), "--url", url, *session, capsys=capsys)
    assert status == 1
    found = not_passing(report)
    assert ("front_end_secrets", "fail", "GET /_gateway/verdict") in found
    # and it runs another config than the one audited: its tokens live 1800 s, not 300
    assert ("short_ttls", "warn", "POST /api/sessions (/vod/free-trailer/master.m3u8)") in found


def leaky_front() -> Starlette:
    """A front that gets everything wrong: the signing key in a page's script, tracebacks as error bodies,
    and a verdict for anyone."""

    async def page(_: Request) -> Response:
        return HTMLResponse('<html><script src="/app.js"></script></html>')

    async def script(_: Request) -> Response:
        return PlainTextResponse(f'const signingKey = "{K1}";', media_type="text/javascript")

    async def verdict(_: Request) -> Response:
        return Response(status_code=204)

    async def crash(_: Request) -> Response:
        trace = 'Traceback (most recent call last):\n  File "/srv/gateway/app.py", line 3, in f\nKeyError: x'
        return PlainTextResponse(trace, status_code=500)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/app.js", script),
            Route("/_gateway/verdict", verdict),
            Route("/{path:path}", crash, methods=["GET", "POST", "DELETE"]),
        ]
    )


def test_a_leaky_front_fails_every_front_end_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_KEYS", raising=False)
    config = tmp_path / "gateway.toml"
    config.write_text(demo_config("http://127.0.0.1:9"))
    with serve_app(leaky_front()) as url:
        status, report = audit_json("--config", str(config), "--url", url, capsys=capsys)
    assert status == 1
    failed = {(item, setting) for item, state, setting in not_passing(report) if state == "fail"}
    assert ("front_end_secrets", "GET /app.js (200)") in failed  # found through the page's <script src>
    assert ("front_end_secrets", "GET /_gateway/verdict") in failed
    errors = [s for item, s in failed if s.startswith("error answer")]
    assert len(errors) == 5
    findings = {f["setting"]: f for f in report["findings"]}
    assert "GATEWAY_KEYS / [keys] ring: k1" in findings["GET /app.js (200)"]["summary"]
    assert "Traceback (most recent call last)" in findings[errors[0]]["summary"]


def test_an_unreachable_url_is_exit_2_and_the_text_report_is_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(demo_config("http://127.0.0.1:9"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = [sys.executable, "-m", "gateway", "audit", "--config", str(config)]
    with unaccepting_port() as port:
        dead = subprocess.run(
            [*run, "--url", f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert dead.returncode == 2 and "error: --url: GET http://127.0.0.1:" in dead.stderr
    offline = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert offline.returncode == 1
    assert "FAIL  [origin] auth_secret (GATEWAY_ORIGIN_SECRET)" in offline.stdout
