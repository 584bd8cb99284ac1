"""Revocations shared by two gateway instances through a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.dev.demo import MEDIA_ROOT, demo_settings
from gateway.http.app import build_app
from gateway.sessions.revocations import RedisRevocations
from tests.support.servers import redis_server, static_origin

PAID = {"authorization": "Bearer demo-paid"}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def test_a_revocation_on_one_instance_is_enforced_by_another(redis_url: str, tmp_path: Path) -> None:
    with static_origin(MEDIA_ROOT) as (origin, _):
        settings = dataclasses.replace(demo_settings(tmp_path, origin), redis_url=redis_url)
        stores = [RedisRevocations(redis_url, refresh_seconds=0.1) for _ in range(2)]
        a, b = (build_app(settings, revocations=store) for store in stores)
        try:
            async with (
                httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://127.0.0.1") as on_a,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=b), base_url="http://127.0.0.1") as on_b,
            ):
                session = (
                    await on_a.post("/api/sessions", json={"asset": "/vod/title-9000/master.m3u8"}, headers=PAID)
                ).json()
                assert (await on_b.get(session["playback_url"])).status_code == 200
                revoke = await on_a.request(
                    "DELETE", f"/api/sessions/{session['session_id']}", json={"token": session["token"]}
                )
                assert revoke.status_code == 204
                for _ in range(50):  # instance B learns of it within its refresh interval
                    response = await on_b.get(session["playback_url"])
                    if response.status_code == 403:
                        break
                    await asyncio.sleep(0.05)
                assert response.status_code == 403 and response.json()["error"] == "revoked"
        finally:
            for store in stores:
                store.close()


def test_entries_expire_with_the_session_cap_and_survive_a_restart(redis_url: str) -> None:
    first = RedisRevocations(redis_url, key="test:revoked")
    first.revoke("s-old", until=1_000.0)
    first.revoke("s-live", until=2_000_000_000.0)
    first.close()  # writes what is still queued before it returns
    second = RedisRevocations(redis_url, key="test:revoked")  # a fresh instance reads the shared set
    raw = redis.Redis.from_url(redis_url)
    try:
        assert second.wait_first_sync(5)
        assert second.is_revoked("s-live", now=1_800_000_000)
        assert not second.is_revoked("s-old", now=1_800_000_000)
        assert raw.zscore("test:revoked", "s-old") is None  # past its session's cap: dropped from Redis
        assert raw.zscore("test:revoked", "s-live") is not None
    finally:
        raw.close()
        second.close()


def test_redis_down_keeps_local_revocations(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        store = RedisRevocations(url, refresh_seconds=0.05)
    try:
        store.revoke("s-1", until=2_000_000_000.0)  # the write fails: logged, held locally
        assert store.is_revoked("s-1", now=1_800_000_000)
    finally:
        store.close()
