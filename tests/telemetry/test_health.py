"""`/healthz` and `/readyz` on a real uvicorn, with the origin and a real redis-server up, down and hanging."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx

from gateway.http.app import build_app
from gateway.http.health import READY_TIMEOUT_SECONDS
from tests.integration.test_redis_resilience import wait_for
from tests.support.servers import free_port, redis_server, serve_app, static_origin, unaccepting_port
from tests.telemetry.support import gateway_settings, origin_tree


def test_ready_when_the_origin_answers_and_not_when_it_is_down(tmp_path: Path) -> None:
    with static_origin(origin_tree(tmp_path)) as (origin, _), serve_app(build_app(gateway_settings(origin))) as base:
        ready = httpx.get(f"{base}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        assert httpx.get(f"{base}/_gateway/ready").json() == {"ready": True}  # the older name
    dead = f"http://127.0.0.1:{free_port()}/"
    with serve_app(build_app(gateway_settings(dead))) as base:
        ready = httpx.get(f"{base}/readyz")
        alive = httpx.get(f"{base}/healthz")
    assert ready.status_code == 503 and ready.headers["cache-control"] == "no-store"
    body = ready.json()
    assert body["ready"] is False and list(body["failed"]) == [f"origin {dead}vod/"]
    assert "unreachable" in body["failed"][f"origin {dead}vod/"] and "unreachable" in body["reason"]
    assert (alive.status_code, alive.text) == (200, "ok\n")  # liveness does not depend on the origin


def test_a_hanging_origin_makes_readyz_answer_within_its_deadline() -> None:
    with unaccepting_port() as port, serve_app(build_app(gateway_settings(f"http://127.0.0.1:{port}/"))) as base:
        started = time.monotonic()
        ready = httpx.get(f"{base}/readyz", timeout=30)
        took = time.monotonic() - started
    assert ready.status_code == 503 and took < READY_TIMEOUT_SECONDS + 1.5, took
    assert "timed out" in ready.json()["reason"] or "no answer within" in ready.json()["reason"]


def test_ready_follows_redis_going_away_and_coming_back(tmp_path: Path) -> None:
    redis_port = free_port()
    with static_origin(origin_tree(tmp_path / "origin")) as (origin, _), contextlib.ExitStack() as first_redis:
        redis_url = first_redis.enter_context(redis_server(tmp_path / "redis", port=redis_port))
        with serve_app(build_app(gateway_settings(origin, redis_url=redis_url))) as base:
            assert httpx.get(f"{base}/readyz").json() == {"ready": True}
            first_redis.close()  # redis-server stops; the gateway keeps serving, not ready
            ready = httpx.get(f"{base}/readyz", timeout=10)
            assert ready.status_code == 503 and list(ready.json()["failed"]) == ["redis"]
            assert f"127.0.0.1:{redis_port}" in ready.json()["reason"]
            assert httpx.get(f"{base}/healthz").status_code == 200
            with redis_server(tmp_path / "redis", port=redis_port):
                wait_for(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, 10, "ready again")
                assert httpx.get(f"{base}/readyz").json() == {"ready": True}
