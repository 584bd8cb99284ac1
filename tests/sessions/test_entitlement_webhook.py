"""The entitlement webhook (`[entitlements] webhook_url`): the gateway under a real uvicorn asks a real
backend on 127.0.0.1 at session creation and refresh, in simulated time (the verdict cache's TTL).

The backend is scripted per test: its answer, status, delay; it records every call (body and headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import json
import re
import time
import types
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import EntitlementSettings, Route, SessionSettings, Settings, load_settings
from gateway.config_schema import OnError
from gateway.errors import ConfigError
from gateway.http.app import build_app
from gateway.sessions.entitlements import CatalogEntitlements, Title, Viewer
from gateway.sessions.verdict_cache import Verdict, VerdictCache, verdict_key
from gateway.sessions.webhook import MAX_REASON_CHARS
from gateway.sessions.webhook_auth import verify_webhook_signature
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import verify_signature
from tests.support.clock import FakeClock
from tests.support.paths import REPO
from tests.support.servers import OriginRequest, free_port, scripted_origin, serve_app

RING = KeyRing((HmacKey("k1", b"\x01" * 32),))
SECRET = b"webhook-secret-0123456789"
MASTER = "/vod/title-9000/master.m3u8"
CATALOG = CatalogEntitlements(
    users={"known": Viewer("u-known", "Kim", "free", "NL")},
    titles=(Title("/vod/title-9000/", "Title 9000", paid=True),),  # the webhook decides, not `paid`
)
TIMEOUT = 0.5
Handler = http.server.BaseHTTPRequestHandler
Respond = Callable[[OriginRequest, Handler], None]


def answer(data: object = None, *, status: int = 200, raw: bytes | None = None, delay: float = 0) -> Respond:
    body = raw if raw is not None else json.dumps(data).encode()

    def respond(_: OriginRequest, handler: Handler) -> None:
        time.sleep(delay)
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


class Stack:
    """A gateway whose webhook points at a scripted backend; `respond` may be swapped between calls."""

    def __init__(self, gateway: str, backend: list[OriginRequest], clock: FakeClock, script: dict[str, Respond]):
        self.gateway, self.backend, self.clock, self.script = gateway, backend, clock, script

    def create(self, credential: str = "viewer-credential", **headers: str) -> httpx.Response:
        return httpx.post(
            self.gateway + "/api/sessions",
            json={"asset": MASTER},
            headers={"authorization": f"Bearer {credential}", "x-country": "NL", **headers},
            timeout=5,
        )

    def refresh(self, issued: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.gateway + issued["refresh_url"], json={"token": issued["token"]}, timeout=5)


@pytest.fixture
def stack_with() -> Iterator[Callable[..., Stack]]:
    """`stack_with(respond, **entitlement settings)`: a running gateway and backend (closed after the test)."""
    with contextlib.ExitStack() as running:

        def start(respond: Respond, *, backend_url: str | None = None, **changes: Any) -> Stack:
            script = {"respond": respond}
            url, seen = running.enter_context(scripted_origin(lambda req, handler: script["respond"](req, handler)))
            settings_fields: dict[str, Any] = {
                "webhook_url": backend_url or url + "entitle",
                "secret": SECRET,
                "timeout_seconds": TIMEOUT,
            }
            entitlements = EntitlementSettings(**settings_fields | changes)
            settings = Settings(
                keys=RING,
                routes=(Route(mount="/vod/", origin="http://127.0.0.1:9/vod/"),),
                sessions=SessionSettings(country_header="x-country"),
                catalog=CATALOG,
                entitlements=entitlements,
            )
            clock = FakeClock(time.time())  # real time: the README's check compares against it
            gateway = running.enter_context(serve_app(build_app(settings, clock=clock)))
            return Stack(gateway, seen, clock, script)

        yield start


def backend_verifies(call: OriginRequest, secret: bytes, now: float) -> bool:
    """What README "Entitlement webhook" tells a backend to run, executed as printed there (at `now`)."""
    section = (REPO / "README.md").read_text().split("\n### Entitlement webhook", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - the README's own text, so the documented check is the tested one
    namespace["time"] = types.SimpleNamespace(time=lambda: now)
    return bool(namespace["from_gateway"](call.headers["x-gateway-signature"], call.body, secret))


def test_allow_starts_the_session_for_the_user_the_backend_names(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": True, "ttl_seconds": 60, "user_id": "acct-42"}))
    created = stack.create()
    assert created.status_code == 201, created.text
    grant = verify_signature(created.json()["token"], RING, None)
    assert grant.user_id == "acct-42"
    [call] = stack.backend
    assert call.method == "POST" and call.target == "/entitle"
    assert call.headers["content-type"] == "application/json"
    sent = json.loads(call.body)
    assert sent["purpose"] == "create" and len(sent["request_id"]) == 16
    assert sent["user"] == {"id": None, "credential": "viewer-credential"}
    assert sent["asset"] == MASTER and sent["title_prefix"] == "/vod/title-9000/"
    assert sent["client"] == {"address": "127.0.0.1", "country": "NL"}


def test_a_user_the_catalog_knows_is_sent_by_id_never_by_credential(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": True}))
    assert stack.create("known").status_code == 201
    sent = json.loads(stack.backend[0].body)
    assert sent["user"] == {"id": "u-known", "credential": None}
    assert verify_signature(stack.create("known").json()["token"], RING, None).user_id == "u-known"


def test_the_signature_is_verifiable_by_a_backend_and_binds_time_and_body(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": True}))
    assert stack.create().status_code == 201
    call = stack.backend[0]
    now = stack.clock()
    assert backend_verifies(call, SECRET, now)
    assert verify_webhook_signature(call.headers["x-gateway-signature"], SECRET, call.body, now=now)
    tampered = dataclasses.replace(call, body=call.body.replace(b"viewer-credential", b"other-credential"))
    assert not backend_verifies(tampered, SECRET, now)
    assert not backend_verifies(call, b"another-secret-0123456789", now)
    assert not backend_verifies(call, SECRET, now + 31)  # a captured call is useless later


def test_deny_reaches_the_viewer_as_the_refusals_detail(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": False, "reason": "Followers only: follow the channel to watch"}))
    refused = stack.create()
    assert refused.status_code == 403
    assert refused.headers["x-gateway-error"] == "not_entitled"
    assert refused.json()["detail"] == "Followers only: follow the channel to watch"


def test_a_backends_reason_is_sanitized_printable_and_bounded(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": False, "reason": "bad\x1b[31m\r\nSet-Cookie: x=1\x00 " + "y" * 5000}))
    detail = stack.create().json()["detail"]
    assert detail.startswith("bad [31m Set-Cookie: x=1 yyy") and detail.endswith("…")
    assert len(detail) == MAX_REASON_CHARS and detail.isprintable()


def test_a_verdict_is_cached_for_its_ttl_per_user_title_and_network(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": True, "ttl_seconds": 30}))
    assert [stack.create().status_code for _ in range(3)] == [201, 201, 201]
    assert len(stack.backend) == 1  # one backend call for three sessions
    assert stack.create("someone-else").status_code == 201
    assert stack.create(**{"x-country": "DE"}).status_code == 201
    assert len(stack.backend) == 3  # another user, another country: asked again
    stack.clock.advance(29)
    assert stack.create().status_code == 201 and len(stack.backend) == 3
    stack.clock.advance(1)  # the TTL is over
    stack.script["respond"] = answer({"allow": False, "reason": "subscription ended"})
    refused = stack.create()
    assert len(stack.backend) == 4 and refused.json()["detail"] == "subscription ended"


def test_a_verdicts_ttl_is_capped_and_a_zero_ttl_is_not_cached(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": True, "ttl_seconds": 86400}), max_cache_seconds=10)
    stack.create()
    stack.clock.advance(10)
    stack.create()
    assert len(stack.backend) == 2
    stack.script["respond"] = answer({"allow": True, "ttl_seconds": 0})
    stack.clock.advance(10)
    stack.create()
    stack.create()
    assert len(stack.backend) == 4


def test_refresh_asks_the_backend_by_user_id_and_a_refusal_ends_renewal(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": True, "ttl_seconds": 0, "user_id": "acct-42"}))
    issued = stack.create().json()
    assert stack.refresh(issued).status_code == 200
    sent = json.loads(stack.backend[1].body)
    assert sent["purpose"] == "refresh" and sent["user"] == {"id": "acct-42", "credential": None}
    assert sent["asset"] == sent["title_prefix"] == "/vod/title-9000/"
    stack.script["respond"] = answer({"allow": False, "reason": "account suspended"})
    refused = stack.refresh(issued)
    assert refused.status_code == 403 and refused.json() | {"request_id": ""} == {
        "error": "not_entitled",
        "detail": "account suspended",
        "request_id": "",
    }


def test_a_slow_backend_is_cut_off_at_the_timeout_and_on_error_decides(stack_with: Callable[..., Stack]) -> None:
    slow = answer({"allow": True}, delay=TIMEOUT + 1.5)
    denying = stack_with(slow)
    started = time.monotonic()
    refused = denying.create()
    took = time.monotonic() - started
    assert refused.status_code == 503 and refused.headers["x-gateway-error"] == "entitlements_unavailable"
    assert refused.headers["retry-after"] == "5"
    assert "did not answer within 0.5 s" in refused.json()["detail"]
    assert TIMEOUT <= took < TIMEOUT + 1.0, took  # the gateway did not wait for the backend
    allowing = stack_with(slow, on_error=OnError.ALLOW)
    assert allowing.create().status_code == 201
    allowing.script["respond"] = answer({"allow": False, "reason": "no"})
    assert allowing.create().status_code == 403  # an allow on error was not cached


def test_a_backend_dripping_its_answer_is_cut_off_at_the_timeout_too(stack_with: Callable[..., Stack]) -> None:
    """Each byte arrives well within a read timeout; the whole answer does not within `timeout_seconds`."""
    body = b'{"allow": true}'

    def drip(_: OriginRequest, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        with contextlib.suppress(OSError):  # the gateway hangs up mid-answer
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.15)

    stack = stack_with(drip)
    started = time.monotonic()
    refused = stack.create()
    assert refused.status_code == 503 and "did not answer within 0.5 s" in refused.json()["detail"]
    assert time.monotonic() - started < TIMEOUT + 1.0


def test_a_down_backend_follows_on_error(stack_with: Callable[..., Stack]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/entitle"  # nothing listens there
    refused = stack_with(answer({}), backend_url=nowhere).create()
    assert refused.status_code == 503 and "could not be reached (ConnectError)" in refused.json()["detail"]
    assert nowhere not in refused.text  # the backend's address stays internal
    assert stack_with(answer({}), backend_url=nowhere, on_error=OnError.ALLOW).create().status_code == 201


@pytest.mark.parametrize(
    ("respond", "why"),
    [
        (answer(raw=b"<html>oops</html>"), "not JSON"),
        (answer({"allowed": True}), 'without a boolean "allow"'),
        (answer({"allow": "yes"}), 'without a boolean "allow"'),
        (answer({"allow": True, "ttl_seconds": "60"}), '"ttl_seconds"'),
        (answer({"allow": False, "reason": ["x"]}), '"reason"'),
        (answer({"allow": True, "user_id": "a\nb"}), '"user_id"'),
        (answer({"allow": True}, status=500), "answered HTTP 500"),
        (answer(raw=b'{"allow": true, "reason": "' + b"x" * 20000 + b'"}'), "more than 16384 bytes"),
    ],
)
def test_a_malformed_answer_is_an_error_not_a_verdict(
    stack_with: Callable[..., Stack], respond: Respond, why: str
) -> None:
    refused = stack_with(respond).create()
    assert refused.status_code == 503, refused.text
    assert why in refused.json()["detail"]


# --- the cache's bound and the configuration ----------------------------------------------------------


def test_the_verdict_cache_is_bounded_least_recently_used_first() -> None:
    cache = VerdictCache(max_entries=2)
    keys = [
        verdict_key(user_id=f"u{i}", credential=None, title_prefix="/t/", client_ip=None, country=None)
        for i in range(3)
    ]
    for key in keys[:2]:
        cache.put(key, Verdict(True, ""), expires_at=100)
    assert cache.get(keys[0], now=0) is not None  # u0 used again: u1 is now the oldest
    cache.put(keys[2], Verdict(True, ""), expires_at=100)
    assert len(cache) == 2 and cache.get(keys[1], now=0) is None and cache.get(keys[0], now=0) is not None
    assert cache.get(keys[0], now=100) is None and len(cache) == 1  # expired entries leave


def test_the_cache_holds_a_digest_of_a_credential_and_a_network_not_an_address() -> None:
    one = verdict_key(
        user_id=None, credential="s3cret", title_prefix="/t/", client_ip=ip_address("203.0.113.7"), country="NL"
    )
    assert "s3cret" not in repr(one) and "203.0.113.0/24" in one
    same_block = verdict_key(
        user_id=None, credential="s3cret", title_prefix="/t/", client_ip=ip_address("203.0.113.200"), country="NL"
    )
    other_block = verdict_key(
        user_id=None, credential="s3cret", title_prefix="/t/", client_ip=ip_address("203.0.114.7"), country="NL"
    )
    assert one == same_block != other_block
    v6 = verdict_key(
        user_id="u", credential=None, title_prefix="/t/", client_ip=ip_address("2001:db8:1:2::9"), country=None
    )
    assert "2001:db8:1::/48" in v6


KEY = "k1:" + "A" * 43
BASE = f'[keys]\nring = "{KEY}"\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:9/"\n'
SECRET_TEXT = "c2VjcmV0LXNlY3JldC1zZWNyZXQ"  # base64url of 20 bytes


def load(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + body)
    return load_settings(path, environ or {})


def test_the_entitlements_table_loads_with_the_secret_from_the_file_or_the_environment(tmp_path: Path) -> None:
    table = (
        '[entitlements]\nwebhook_url = "https://backend.example/entitle"\ntimeout_seconds = 1.5\n'
        'on_error = "allow"\ncache_entries = 50\nmax_cache_seconds = 60\n'
    )
    loaded = load(tmp_path, table, {"GATEWAY_ENTITLEMENTS_SECRET": SECRET_TEXT}).entitlements
    assert loaded.webhook_url == "https://backend.example/entitle" and loaded.on_error is OnError.ALLOW
    assert (loaded.timeout_seconds, loaded.cache_entries, loaded.max_cache_seconds) == (1.5, 50, 60)
    assert loaded.secret == b"secret-secret-secret" and "secret-secret" not in repr(loaded)
    assert load(tmp_path, table + f'secret = "{SECRET_TEXT}"\n').entitlements.secret == b"secret-secret-secret"
    assert load(tmp_path, "").entitlements.webhook_url == ""  # off by default: the catalog decides


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('webhook_url = "https://b.example/"\n', "needs a secret"),
        (f'webhook_url = "ftp://b.example/"\nsecret = "{SECRET_TEXT}"\n', "must be an http(s) URL"),
        (
            f'webhook_url = "https://b.example/"\nsecret = "{SECRET_TEXT}"\non_error = "retry"\n',
            "on_error must be one of deny, allow",
        ),
        ('secret = "c2hvcnQ"\n', "must be at least 16 bytes"),
        ("timeout_seconds = 0\n", "timeout_seconds must be positive"),
        ('webhook = "https://b.example/"\n', "unknown key 'webhook' in [entitlements]"),
    ],
)
def test_nonsense_in_the_entitlements_table_fails_at_start_up(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, "[entitlements]\n" + table)


def test_concurrent_questions_about_the_same_viewer_share_one_call(stack_with: Callable[..., Stack]) -> None:
    stack = stack_with(answer({"allow": False, "reason": "followers only"}, delay=0.3))

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.gateway, timeout=5) as client:
            headers = {"authorization": "Bearer viewer-credential", "x-country": "NL"}
            calls = [client.post("/api/sessions", json={"asset": MASTER}, headers=headers) for _ in range(5)]
            return await asyncio.gather(*calls)

    answers = asyncio.run(burst())
    assert [a.json()["detail"] for a in answers] == ["followers only"] * 5
    assert len(stack.backend) == 1  # a zero TTL: nothing was cached, the five shared the one call in flight
