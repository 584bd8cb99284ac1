"""Issue 9.6, one error tree: every error the gateway answers with is a class of `gateway.errors`, and one
exception-handler map (gateway/http/errors.py) answers every one of them in the same shape, CORS included.
An unexpected exception is a JSON 500 with a request id; its traceback reaches the log, never the body."""

from __future__ import annotations

import ast
import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from gateway import errors
from gateway.config import Route, Settings
from gateway.errors import (
    ClientRefused,
    ClientRule,
    Denial,
    EntitlementRefused,
    GatewayError,
    OriginBadStatus,
    Refusal,
    TokenDenied,
)
from gateway.http.app import build_app
from gateway.http.cors import CorsPolicy
from gateway.sessions.revocations import MemoryRevocations
from gateway.sessions.service import SessionService
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import sign_grant

KEYS = KeyRing((HmacKey("k1", b"\x01" * 32),))
LISTED = "https://player.example"


def tree(root: type[GatewayError] = GatewayError) -> Iterator[type[GatewayError]]:
    """Every class of the error tree, the root included (subclasses of subclasses too)."""
    yield root
    for child in root.__subclasses__():
        yield from tree(child)


# An instance of each class whose constructor is not `(detail)`; the test fails for a new class that needs one.
SAMPLES: dict[type[GatewayError], GatewayError] = {
    TokenDenied: TokenDenied(Denial.SCOPE, "a media-scoped token does not open a playlist request"),
    EntitlementRefused: EntitlementRefused(Refusal.GEO_BLOCKED, "'Title 9000' is not available in country BR"),
    OriginBadStatus: OriginBadStatus("origin answered 410 for http://origin.test/vod/x.ts", 410),
    ClientRefused: ClientRefused(ClientRule.REFERER, "referer 'https://other.example/' is not an allowed site"),
}


def sample(cls: type[GatewayError]) -> GatewayError:
    return SAMPLES.get(cls) or cls(f"what went wrong for {cls.__name__}")


def settings() -> Settings:
    return Settings(
        keys=KEYS,
        routes=(Route(mount="/vod/", origin="http://origin.test/vod/"),),
        cors=CorsPolicy(frozenset({LISTED})),
    )


def app_raising(raised: dict[str, BaseException]) -> httpx.AsyncClient:
    """The gateway with one extra route that raises `raised[name]` for `/boom/<name>`."""

    async def boom(request: Request) -> Response:
        raise raised[request.path_params["name"]]

    app = build_app(settings(), extra_routes=[StarletteRoute("/boom/{name}", boom, methods=["GET"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test")


def test_every_error_class_in_the_tree_has_a_handler() -> None:
    handlers = build_app(settings()).exception_handlers
    for cls in tree():
        # Starlette looks a handler up along the exception's MRO: the first class with one answers.
        assert any(base in handlers for base in cls.__mro__ if base is not Exception), cls
        error = sample(cls)
        assert isinstance(error, cls) and error.code.islower() and " " not in error.code, cls
        assert 400 <= error.status <= 599 and error.detail, cls


async def test_every_error_class_is_answered_in_one_shape_readable_cross_site() -> None:
    raised: dict[str, BaseException] = {cls.__name__: sample(cls) for cls in tree()}
    async with app_raising(raised) as client:
        for name, error in raised.items():
            assert isinstance(error, GatewayError)
            response = await client.get(f"/boom/{name}", headers={"origin": LISTED})
            assert response.status_code == error.status, name
            body = response.json()
            assert body["error"] == error.code and body["detail"] == error.detail, name
            assert len(body["request_id"]) == 16, name
            header = "x-token-denial" if isinstance(error, TokenDenied) else "x-gateway-error"
            other = "x-gateway-error" if header == "x-token-denial" else "x-token-denial"
            assert response.headers[header] == error.code and other not in response.headers, name
            assert response.headers["cache-control"] == "no-store", name
            assert response.headers["access-control-allow-origin"] == LISTED, name  # the CORS layer saw it
            assert "x-token-denial" in response.headers["access-control-expose-headers"], name


async def test_an_unexpected_exception_is_a_json_500_with_a_request_id_and_its_traceback_only_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_detail = "db password hunter2 in a bug's message"
    with caplog.at_level(logging.ERROR, logger="gateway.http.errors"):
        async with app_raising({"bug": RuntimeError(secret_detail)}) as client:
            response = await client.get("/boom/bug")  # no Origin: `*`
            listed = await client.get("/boom/bug", headers={"origin": LISTED})
    assert response.status_code == 500 and listed.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error" and response.headers["x-gateway-error"] == "internal_error"
    assert body["request_id"] in body["detail"]  # what to quote to an operator
    assert response.headers["access-control-allow-origin"] == "*"
    assert listed.headers["access-control-allow-origin"] == LISTED
    for text in (response.text, listed.text):
        assert "Traceback" not in text and "RuntimeError" not in text and secret_detail not in text
    record = next(r for r in caplog.records if body["request_id"] in r.getMessage())
    assert record.exc_info is not None and "/boom/bug" in record.getMessage()
    assert "Traceback" in caplog.text and secret_detail in caplog.text and "RuntimeError" in caplog.text
    assert caplog.text.count("Traceback") == 2  # once per request: the server is not handed it again


async def test_framework_refusals_take_the_same_shape() -> None:
    async with app_raising({}) as client:
        response = await client.post("/vod/title/master.m3u8")  # the edge takes GET and HEAD only
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    assert response.headers["x-gateway-error"] == "method_not_allowed" and "GET" in response.headers["allow"]


async def test_denials_are_counted_at_the_metrics_endpoint() -> None:
    """The counters live in the process's default registry (other apps of this test run count too): deltas."""

    def denials(text: str, reason: str) -> float:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "gateway_denials_total" and sample.labels == {"reason": reason}:
                    return sample.value
        return 0.0

    async with app_raising({"denied": TokenDenied(Denial.EXPIRED, "token expired")}) as client:
        before = (await client.get("/metrics")).text
        await client.get("/boom/denied")
        await client.get("/vod/title/seg.ts")  # no token: missing, from the edge
        after = (await client.get("/_gateway/metrics")).text  # the older name of the same endpoint
    assert denials(after, "expired") - denials(before, "expired") == 1
    assert denials(after, "missing") - denials(before, "missing") == 1


def test_the_codes_players_and_tests_rely_on_are_kept() -> None:
    denials = {d.value for d in Denial}
    assert {"missing", "malformed", "bad_signature", "unknown_key", "expired", "not_yet_valid"} <= denials
    assert {"acl", "ip", "scope", "revoked", "session_ended"} <= denials
    assert {r.value for r in Refusal} == {"unauthenticated", "not_entitled", "geo_blocked", "unknown_asset"}
    codes = {cls.code for cls in tree()}
    assert {"bad_request", "no_route", "bad_manifest", "origin_status", "origin_unavailable"} <= codes
    assert {"origin_timeout", "manifest_too_large", "internal_error"} <= codes


def test_origin_status_passes_a_missing_object_on_and_anything_else_is_502() -> None:
    assert [OriginBadStatus("x", status).status for status in (404, 410, 416, 500, 403)] == [404, 410, 416, 502, 502]
    assert OriginBadStatus("x", 503).origin_status == 503


def test_session_ended_is_a_typed_denial_of_the_session_service() -> None:
    now = 1_800_000_000
    service = SessionService(settings(), settings().catalog, MemoryRevocations())
    grant = Grant(("/vod/t/",), now + 300, session_id="s1", scope=Scope.ALL, session_ends_at=now + 3600)
    token = sign_grant(grant, KEYS)
    for call in (
        lambda: asyncio.run(
            service.refresh(session_id="s1", token=token, client_ip=None, country=None, now=now + 3601)
        ),
        lambda: service.revoke(session_id="s1", token=token, now=now + 3601),
    ):
        with pytest.raises(TokenDenied) as refused:
            call()
        assert refused.value.reason is Denial.SESSION_ENDED and refused.value.status == 403


def test_the_error_tree_is_a_leaf_module() -> None:
    """Every core may raise these without pulling in anything else of the gateway."""
    source = Path(errors.__file__).read_text()
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(name and name.startswith("gateway") for name in imported), imported
