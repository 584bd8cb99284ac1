"""`/metrics` scraped from a real uvicorn after real requests: every counter the issue lists moves by what
was done, every response names its request id, and `[metrics]` moves or removes the endpoint."""

from __future__ import annotations

import asyncio
import http.server
import time
from pathlib import Path

import httpx

from gateway.config import MetricsSettings, Route
from gateway.http.app import build_app
from tests.support.servers import OriginRequest, free_port, scripted_origin, serve_app, static_origin
from tests.telemetry.support import MASTER, PAID, PLAYLIST, delta, gateway_settings, origin_tree, scrape


def test_counters_move_with_real_requests(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens: origin_unavailable
    with static_origin(origin_tree(tmp_path)) as (origin, _):
        app = build_app(gateway_settings(origin, extra=(Route(mount="/down/", origin=dead),)))
        with serve_app(app) as base:
            before = scrape(f"{base}/metrics")
            session = httpx.post(f"{base}/api/sessions", json={"asset": MASTER}, headers=PAID).json()
            token = session["token"]
            playlist = httpx.get(f"{base}{MASTER}?token={token}")  # miss: fetched, prepared, rendered
            again = httpx.get(f"{base}{MASTER}?token={token}")  # hit: rendered from the prepared copy
            segment = httpx.get(f"{base}/vod/t/seg0.ts?token={token}")
            missing = httpx.get(f"{base}/vod/t/seg1.ts")  # no token
            refreshed = httpx.post(f"{base}{session['refresh_url']}", json={"token": token})
            revoked = httpx.request("DELETE", f"{base}/api/sessions/{session['session_id']}", json={"token": token})
            down = httpx.get(f"{base}/down/x.m3u8?token={token}")  # outside the grant's prefix: acl
            after = scrape(f"{base}/_gateway/metrics")
    assert [r.status_code for r in (playlist, again, segment, missing, refreshed, revoked, down)] == [
        200,
        200,
        200,
        401,
        200,
        204,
        403,
    ]
    assert playlist.content.count(b"token=") == 2 and playlist.content != PLAYLIST
    requests = "gateway_requests_total"
    assert delta(before, after, requests, kind="manifest", status="200") == 2
    assert delta(before, after, requests, kind="manifest", status="403") == 1
    assert delta(before, after, requests, kind="segment", status="200") == 1
    assert delta(before, after, requests, kind="segment", status="401") == 1
    assert delta(before, after, requests, kind="session_api", status="201") == 1
    assert delta(before, after, requests, kind="session_api", status="200") == 1
    assert delta(before, after, requests, kind="session_api", status="204") == 1
    assert delta(before, after, requests, kind="internal", status="200") == 1  # the first scrape
    assert delta(before, after, "gateway_denials_total", reason="missing") == 1
    assert delta(before, after, "gateway_denials_total", reason="acl") == 1
    assert delta(before, after, "gateway_tokens_issued_total") == 1
    assert delta(before, after, "gateway_tokens_renewed_total") == 1
    assert delta(before, after, "gateway_revocations_total") == 1
    assert delta(before, after, "gateway_manifest_cache_total", result="miss") == 1
    assert delta(before, after, "gateway_manifest_cache_total", result="hit") == 1
    assert delta(before, after, "gateway_manifest_prepare_seconds_count") == 1
    assert delta(before, after, "gateway_manifest_render_seconds_count") == 2
    assert delta(before, after, "gateway_origin_request_seconds_count", pool="manifest") == 1
    assert delta(before, after, "gateway_origin_request_seconds_count", pool="segment") == 1
    assert delta(before, after, "gateway_origin_request_seconds_bucket", pool="segment", le="+Inf") == 1


def test_origin_errors_are_counted_by_kind(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    with static_origin(origin_tree(tmp_path)) as (origin, _):
        app = build_app(gateway_settings(origin, extra=(Route(mount="/vod/gone/", origin=dead),)))
        with serve_app(app) as base:
            token = httpx.post(f"{base}/api/sessions", json={"asset": MASTER}, headers=PAID).json()["token"]
            before = scrape(f"{base}/metrics")
            absent = httpx.get(f"{base}/vod/t/absent.ts?token={token}")  # the origin's 404
            absent_playlist = httpx.get(f"{base}/vod/t/absent.m3u8?token={token}")
            after = scrape(f"{base}/metrics")
        app = build_app(gateway_settings(dead))
        with serve_app(app) as base:
            token = httpx.post(f"{base}/api/sessions", json={"asset": MASTER}, headers=PAID).json()["token"]
            unreachable = httpx.get(f"{base}{MASTER}?token={token}")
            last = scrape(f"{base}/metrics")
    assert (absent.status_code, absent_playlist.status_code, unreachable.status_code) == (404, 404, 502)
    assert delta(before, after, "gateway_origin_errors_total", kind="origin_status") == 2
    assert delta(after, last, "gateway_origin_errors_total", kind="origin_unavailable") == 1
    assert delta(before, after, "gateway_requests_total", kind="segment", status="404") == 1


def test_concurrent_misses_are_counted_as_coalesced(tmp_path: Path) -> None:
    """Five viewers ask for a playlist the origin takes 0.5 s to send: one miss, four coalesced."""

    def slow(request: OriginRequest, handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(0.5)
        handler.send_response(200)
        handler.send_header("content-length", str(len(PLAYLIST)))
        handler.end_headers()
        handler.wfile.write(PLAYLIST)

    async def five(url: str) -> list[int]:
        async with httpx.AsyncClient() as client:
            return [r.status_code for r in await asyncio.gather(*(client.get(url) for _ in range(5)))]

    with scripted_origin(slow) as (origin, seen), serve_app(build_app(gateway_settings(origin))) as base:
        token = httpx.post(f"{base}/api/sessions", json={"asset": MASTER}, headers=PAID).json()["token"]
        before = scrape(f"{base}/metrics")
        statuses = asyncio.run(five(f"{base}{MASTER}?token={token}"))
        after = scrape(f"{base}/metrics")
    assert statuses == [200] * 5 and len(seen) == 1
    assert delta(before, after, "gateway_manifest_cache_total", result="miss") == 1
    assert delta(before, after, "gateway_manifest_cache_total", result="coalesced") == 4


def test_every_response_carries_its_request_id_and_errors_quote_it(tmp_path: Path) -> None:
    with static_origin(origin_tree(tmp_path)) as (origin, _), serve_app(build_app(gateway_settings(origin))) as base:
        responses = [
            httpx.get(f"{base}/healthz"),
            httpx.get(f"{base}/metrics"),
            httpx.get(f"{base}/vod/t/seg0.ts"),  # a denial
            httpx.post(f"{base}/api/sessions", json={"asset": MASTER}, headers=PAID),
            httpx.options(
                f"{base}{MASTER}", headers={"origin": "https://a.example", "access-control-request-method": "GET"}
            ),
        ]
    ids = [response.headers["x-request-id"] for response in responses]
    assert all(len(rid) == 16 and int(rid, 16) >= 0 for rid in ids) and len(set(ids)) == len(ids)
    denied = responses[2]
    assert denied.status_code == 401 and denied.json()["request_id"] == denied.headers["x-request-id"]


def test_metrics_settings_move_or_remove_the_endpoint(tmp_path: Path) -> None:
    with static_origin(origin_tree(tmp_path)) as (origin, _):
        off = build_app(gateway_settings(origin, metrics=MetricsSettings(enabled=False)))
        with serve_app(off) as base:
            assert httpx.get(f"{base}/metrics").status_code == 404  # no route serves /metrics then
            assert httpx.get(f"{base}/_gateway/metrics").status_code == 404
            assert httpx.get(f"{base}/healthz").status_code == 200
        apart = build_app(gateway_settings(origin, metrics=MetricsSettings(port=free_port())))
        with serve_app(apart) as base:
            assert httpx.get(f"{base}/metrics").status_code == 404
