"""Shared revocations when Redis misbehaves (issue 10): hung, restarted empty, down at start, and large.

Every Redis here is a real Debian redis-server on 127.0.0.1, reached directly or through `tcp_proxy`
(which counts bytes, or turns into a server that accepts connections and never answers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from gateway.dev.demo import MEDIA_ROOT, REPO, demo_settings
from gateway.http.app import build_app
from gateway.sessions.revocations import RedisRevocations
from tests.support.servers import free_port, redis_server, serve_app, static_origin
from tests.support.tcp_proxy import tcp_proxy

PAID = {"authorization": "Bearer demo-paid"}
ASSET = {"asset": "/vod/title-9000/master.m3u8"}
KEY = "gateway:revoked"  # the default key: the shared set, scored by each session's cap


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll `condition` until it holds; returns how long that took. Fails after `seconds`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.01)
    return time.monotonic() - start


async def test_a_hung_redis_never_stalls_the_event_loop(tmp_path: Path) -> None:
    """Redis accepts the connection and never answers: revoking answers at once, everything else keeps going."""
    with (
        redis_server(tmp_path / "redis") as url,
        tcp_proxy(url) as proxy,
        static_origin(MEDIA_ROOT) as (origin, _),
    ):
        store = RedisRevocations(proxy.url(), refresh_seconds=0.1)
        settings = dataclasses.replace(demo_settings(tmp_path, origin), redis_url=proxy.url())
        try:
            with serve_app(build_app(settings, revocations=store)) as base:
                async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                    doomed = (await client.post("/api/sessions", json=ASSET, headers=PAID)).json()
                    other = (await client.post("/api/sessions", json=ASSET, headers=PAID)).json()
                    assert (await client.get(other["playback_url"])).status_code == 200  # origin fetched, cached
                    proxy.hang()  # from here on Redis reads every byte and never answers (2 s socket timeout)

                    async def timed(method: str, url: str, **kwargs: object) -> tuple[float, httpx.Response]:
                        start = time.perf_counter()
                        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
                        return time.perf_counter() - start, response

                    revoke = asyncio.create_task(
                        timed("DELETE", f"/api/sessions/{doomed['session_id']}", json={"token": doomed["token"]})
                    )
                    meanwhile: list[tuple[float, httpx.Response]] = []
                    for i in range(50):  # ~2.5 s: across the whole socket timeout of the stuck write
                        meanwhile.append(await timed("GET", "/_gateway/health" if i % 2 else other["playback_url"]))
                        await asyncio.sleep(0.05)
                    revoke_seconds, revoked = await revoke

                    assert revoked.status_code == 204
                    assert revoke_seconds < 0.1, f"revoking took {revoke_seconds:.3f} s with Redis hung"
                    assert all(r.status_code == 200 for _, r in meanwhile)
                    slowest = max(seconds for seconds, _ in meanwhile)
                    print(f"revoke answered in {revoke_seconds * 1e3:.1f} ms; slowest other {slowest * 1e3:.1f} ms")
                    assert slowest < 0.1, f"a request took {slowest:.3f} s while Redis hung"
                    denied = await client.get(doomed["playback_url"])  # the revocation holds on this instance
                    assert denied.status_code == 403 and denied.json()["error"] == "revoked"
                    ready = await client.get("/_gateway/ready")  # the stuck write timed out by now: not ready
                    assert ready.status_code == 503 and "Redis" in ready.json()["reason"]
        finally:
            store.close()


def test_revocations_survive_a_redis_restart_that_lost_everything(tmp_path: Path) -> None:
    """A revokes; redis-server restarts with no persistence; B, started after it with nothing, learns it."""
    port = free_port()
    until = time.time() + 3600
    with redis_server(tmp_path / "before", port=port) as url:
        # A refreshes less often than B, so B's first sync usually finds the set empty and learns it afterwards.
        a = RedisRevocations(url, refresh_seconds=0.5)
        a.revoke("s-before-restart", until=until)
        raw = redis.Redis.from_url(url)
        wait_for(lambda: raw.zscore(KEY, "s-before-restart") is not None, 5, "the revocation reaching Redis")
        raw.close()
    try:
        with redis_server(tmp_path / "after", port=port) as url:  # `--save '' --appendonly no`: empty
            b = RedisRevocations(url, refresh_seconds=0.1)
            try:
                took = wait_for(lambda: b.is_revoked("s-before-restart", time.time()), 2, "B learning it")
                print(f"B learned the revocation {took:.2f} s after it started (refresh intervals A 0.5 s, B 0.1 s)")
                assert a.is_revoked("s-before-restart", time.time())
            finally:
                b.close()
    finally:
        a.close()


def test_the_gateway_starts_without_redis_and_catches_up(tmp_path: Path) -> None:
    """`serve` with Redis down: starts, says so, serves, is not ready; ready and shared once Redis is up."""
    redis_port = free_port()  # nothing listens here yet: Redis is down
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    with static_origin(MEDIA_ROOT) as (origin, _):
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[[routes]]\nmount = "/vod/"\norigin = "{origin}vod/"\n'
            '[[users]]\ncredential = "demo-paid"\nid = "u-paid"\nplan = "paid"\ncountry = "NL"\n'
            '[[titles]]\nprefix = "/vod/title-9000/"\npaid = true\n'
            f'[revocations]\nredis_url = "{redis_url}"\n'
        )
        port = free_port()
        log_path = tmp_path / "serve.log"
        env = {**os.environ, "GATEWAY_KEYS": "k1:" + "A" * 43}
        env.pop("GATEWAY_REDIS_URL", None)
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                # One process: "its own revocations at once" is per worker while Redis is down (README), and
                # with the default (every core, as Redis is configured) the GET below may reach another worker.
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        base = f"http://127.0.0.1:{port}"
        try:

            def answers() -> bool:
                assert process.poll() is None, f"serve exited without Redis:\n{log_path.read_text()}"
                try:
                    return httpx.get(f"{base}/_gateway/health", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(answers, 20, "serve answering with Redis down")
            log = log_path.read_text()
            assert "Redis" in log and "unreachable" in log, log
            ready = httpx.get(f"{base}/_gateway/ready", timeout=5)
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert f"127.0.0.1:{redis_port}" in ready.json()["reason"]

            session = httpx.post(f"{base}/api/sessions", json=ASSET, headers=PAID, timeout=5).json()
            playback = base + session["playback_url"]
            assert httpx.get(playback, timeout=5).status_code == 200
            revoke_url = f"{base}/api/sessions/{session['session_id']}"
            revoked = httpx.request("DELETE", revoke_url, json={"token": session["token"]}, timeout=5)
            assert revoked.status_code == 204
            denied = httpx.get(playback, timeout=5)  # made here, so it applies here
            assert denied.status_code == 403 and denied.json()["error"] == "revoked"

            with redis_server(tmp_path / "redis", port=redis_port) as url:
                wait_for(lambda: httpx.get(f"{base}/_gateway/ready", timeout=5).status_code == 200, 10, "ready")
                assert httpx.get(f"{base}/_gateway/ready", timeout=5).json() == {"ready": True}
                other = RedisRevocations(url, refresh_seconds=0.1)  # another instance learns it through Redis
                try:
                    wait_for(lambda: other.is_revoked(session["session_id"], time.time()), 5, "sharing")
                finally:
                    other.close()
            assert "reachable again" in log_path.read_text()  # the recovery is logged too
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_an_idle_refresh_of_a_large_set_transfers_almost_nothing(tmp_path: Path) -> None:
    """50,000 revocations in Redis: a refresh that finds nothing new moves O(1) bytes; news still arrives."""
    until = time.time() + 3600
    with redis_server(tmp_path / "redis") as url:
        writer = RedisRevocations(url, refresh_seconds=0.1)
        raw = redis.Redis.from_url(url)
        try:
            for i in range(50_000):
                writer.revoke(f"s-{i:05d}", until=until + i)
            wait_for(lambda: raw.zcard(KEY) == 50_000, 60, "50,000 revocations in Redis")
            with tcp_proxy(url) as proxy:
                reader = RedisRevocations(proxy.url(), refresh_seconds=0.1)
                try:
                    wait_for(lambda: reader.is_revoked("s-49999", time.time()), 10, "the reader's first sync")
                    assert reader.is_revoked("s-00000", time.time())
                    first_sync = proxy.bytes_total
                    before = proxy.bytes_total
                    time.sleep(1.0)  # the measurement window: ~10 refreshes at 0.1 s
                    idle = proxy.bytes_total - before
                    print(f"first sync {first_sync} bytes; 1 s of idle refreshes (~10) {idle} bytes")
                    assert 0 < idle < 5_000, f"idle refreshes moved {idle} bytes in 1 s"

                    before = proxy.bytes_total
                    writer.revoke("s-news", until=until)
                    took = wait_for(lambda: reader.is_revoked("s-news", time.time()), 1, "the new entry")
                    print(f"a new entry arrived after {took:.3f} s, {proxy.bytes_total - before} bytes")
                finally:
                    reader.close()
        finally:
            raw.close()
            writer.close()


def test_the_set_and_the_local_maps_are_capped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Past `max_entries` the entries that expire soonest go, locally and in Redis, and the log says so."""
    now = time.time()
    with redis_server(tmp_path / "redis") as url, caplog.at_level(logging.WARNING, "gateway.sessions.revocations"):
        store = RedisRevocations(url, refresh_seconds=0.1, max_entries=100)
        raw = redis.Redis.from_url(url)
        try:
            for i in range(250):
                store.revoke(f"s-{i:03d}", until=now + 1000 + i)  # later ones live longer
            assert store.is_revoked("s-249", now) and not store.is_revoked("s-000", now)
            assert len(store._known) <= 100
            wait_for(lambda: raw.zscore(KEY, "s-249") is not None, 5, "the newest entry in Redis")
            wait_for(lambda: raw.zcard(KEY) <= 100, 5, "the Redis set trimmed to its cap")
            assert raw.zscore(KEY, "s-000") is None
            assert raw.zcard(KEY + ":log") <= 100  # the changelog is capped with it
        finally:
            raw.close()
            store.close()
    assert any("max_entries" in record.getMessage() for record in caplog.records)


def test_expired_entries_leave_redis_and_the_changelog(tmp_path: Path) -> None:
    clock = [1_000.0]
    with redis_server(tmp_path / "redis") as url:
        store = RedisRevocations(url, refresh_seconds=0.05, full_resync_seconds=0.2, clock=lambda: clock[0])
        raw = redis.Redis.from_url(url)
        try:
            store.revoke("s-short", until=1_100.0)
            store.revoke("s-long", until=2_000_000_000.0)
            wait_for(lambda: raw.zcard(KEY) == 2, 5, "both entries in Redis")
            clock[0] = 1_200.0  # past s-short's session cap
            wait_for(lambda: raw.zscore(KEY, "s-short") is None, 5, "the expired entry trimmed")
            assert raw.zscore(KEY + ":log", "s-short") is None
            assert raw.zscore(KEY, "s-long") is not None
            assert not store.is_revoked("s-short", clock[0]) and store.is_revoked("s-long", clock[0])
        finally:
            raw.close()
            store.close()


def test_a_periodic_full_resync_heals_entries_the_changelog_missed(tmp_path: Path) -> None:
    """An entry added to the set alone (as an older gateway version writes it) arrives with the full resync."""
    with redis_server(tmp_path / "redis") as url:
        store = RedisRevocations(url, refresh_seconds=0.05, full_resync_seconds=0.5)
        raw = redis.Redis.from_url(url)
        try:
            assert store.wait_first_sync(5)
            raw.zadd(KEY, {"s-legacy": time.time() + 3600})
            wait_for(lambda: store.is_revoked("s-legacy", time.time()), 3, "the full resync")
        finally:
            raw.close()
            store.close()
