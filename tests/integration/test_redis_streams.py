"""Issue 14.1 and 14.4 across instances: two gateways (each under its own uvicorn on 127.0.0.1) sharing a real
redis-server count one user's streams and one session's networks together."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.config import Settings
from gateway.config_schema import OnLimit
from gateway.dev.demo import MEDIA_ROOT, demo_settings
from gateway.http.app import build_app
from gateway.sessions.sharing import SharingPolicy
from gateway.sessions.stream_redis import RedisStreams
from gateway.sessions.stream_store import MemoryStreams, StreamStore
from gateway.sessions.stream_table import Outcome, StreamPolicy
from tests.support.clock import FakeClock
from tests.support.servers import free_port, redis_server, serve_app, static_origin
from tests.support.streams import fetch_media_playlist, start_session

T0 = 1_800_000_000.0
IDLE_SECONDS = 8  # with Redis, a stream already admitted is re-checked every idle/4 = 2 s per instance


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(autouse=True)
def empty_redis(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with static_origin(MEDIA_ROOT) as (url, _):
        yield url


async def two_instances(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    with serve_app(build_app(settings, clock=clock)) as a, serve_app(build_app(settings, clock=clock)) as b:
        async with httpx.AsyncClient(base_url=a) as on_a, httpx.AsyncClient(base_url=b) as on_b:
            yield on_a, on_b


def stores(redis_url: str, policy: StreamPolicy, sharing: SharingPolicy) -> dict[str, StreamStore]:
    return {"memory": MemoryStreams(policy, sharing), "redis": RedisStreams(redis_url, policy, sharing)}


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_the_redis_script_follows_the_same_rules_as_the_pure_core(redis_url: str, kind: str) -> None:
    policy = StreamPolicy(2, OnLimit.EVICT_OLDEST, idle_seconds=60, evicted_seconds=3600)
    store = stores(redis_url, policy, SharingPolicy(max_networks=1, window_seconds=600))[kind]
    try:
        seen = [
            await store.observe(user="u1", stream=stream, network=None, now=T0 + at)
            for stream, at in (("s1", 0), ("s2", 1), ("s1", 2), ("s3", 3), ("s2", 4), ("s3", 5), ("s2", 3604))
        ]
        assert [(o.stream.outcome, o.stream.evicted) for o in seen if o.stream] == [
            (Outcome.ADMITTED, None),
            (Outcome.ADMITTED, None),
            (Outcome.ADMITTED, None),
            (Outcome.ADMITTED, "s2"),  # the least recently seen
            (Outcome.EVICTED, None),  # stays out: it does not evict the newcomer in turn
            (Outcome.ADMITTED, None),
            (Outcome.ADMITTED, None),  # after the sessions' maximum life (and everyone idle)
        ]
        assert seen[5].active_streams == 2
        nets = [
            await store.observe(user=None, stream="s9", network=net, now=T0 + 10 + i)
            for i, net in enumerate(["198.51.100.0/24", "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"])
        ]
        assert [(o.sharing.networks, o.sharing.detected) for o in nets if o.sharing] == [
            (1, False),
            (1, False),
            (2, True),
            (3, False),
        ]
        assert all(o.stream is None for o in nets)  # no user: not counted as a stream
    finally:
        await store.aclose()


async def test_two_instances_hold_one_users_limit_together(origin: str, redis_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    settings = dataclasses.replace(
        demo_settings(tmp_path, origin, max_streams=2, stream_idle_seconds=IDLE_SECONDS), redis_url=redis_url
    )
    async for on_a, on_b in two_instances(settings, clock):
        first = (await start_session(on_a)).json()
        second = (await start_session(on_b)).json()
        assert (await fetch_media_playlist(on_b, first)).status_code == 200  # a session moves between instances
        for instance in (on_a, on_b):
            third = await start_session(instance)
            assert third.status_code == 403 and third.json()["error"] == "stream_limit", third.text
        clock.advance(IDLE_SECONDS - 1)
        assert (await fetch_media_playlist(on_a, second)).status_code == 200  # second keeps playing
        clock.advance(2)  # first stopped fetching IDLE_SECONDS + 1 ago: its slot is free on every instance
        assert (await start_session(on_b)).status_code == 201


async def test_evict_oldest_on_one_instance_ends_the_stream_on_the_other(
    origin: str, redis_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    settings = dataclasses.replace(
        demo_settings(tmp_path, origin, max_streams=2, on_limit="evict_oldest", stream_idle_seconds=IDLE_SECONDS),
        redis_url=redis_url,
    )
    async for on_a, on_b in two_instances(settings, clock):
        oldest = (await start_session(on_a)).json()
        assert (await fetch_media_playlist(on_a, oldest)).status_code == 200
        clock.advance(1)
        other = (await start_session(on_b)).json()
        assert (await start_session(on_b)).status_code == 201  # evicts `oldest`, which plays through A
        clock.advance(IDLE_SECONDS / 4)  # A re-checks a stream it admitted at most this often
        refused = await fetch_media_playlist(on_a, oldest)
        assert refused.status_code == 403 and refused.json()["error"] == "stream_limit"
        assert (await fetch_media_playlist(on_a, other)).status_code == 200


async def test_sharing_seen_across_instances_revokes_the_session_on_both(
    origin: str, redis_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    settings = dataclasses.replace(
        demo_settings(tmp_path, origin),
        redis_url=redis_url,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        sharing=SharingPolicy(max_networks=2, window_seconds=600, revoke=True),
    )
    async for on_a, on_b in two_instances(settings, clock):
        session = (await start_session(on_a, forwarded_for="198.51.100.7")).json()
        assert (await fetch_media_playlist(on_b, session, forwarded_for="203.0.113.9")).status_code == 200
        # A third network, on A: each instance saw only some of them, Redis saw all three.
        third = await fetch_media_playlist(on_a, session, forwarded_for="192.0.2.1")
        assert third.status_code == 403 and third.json()["error"] == "revoked"
        for _ in range(60):  # B learns the revocation within its revocation refresh (1 s)
            on_b_again = await fetch_media_playlist(on_b, session, forwarded_for="203.0.113.9")
            if on_b_again.status_code == 403:
                break
            await asyncio.sleep(0.1)
        assert on_b_again.status_code == 403 and on_b_again.json()["error"] == "revoked"


async def test_a_redis_outage_admits_streams_uncounted(caplog: pytest.LogCaptureFixture) -> None:
    policy = StreamPolicy(1, OnLimit.BLOCK_NEW, idle_seconds=60, evicted_seconds=3600)
    store = RedisStreams(f"redis://127.0.0.1:{free_port()}/0", policy, SharingPolicy(0, 600))
    try:
        seen = await store.observe(user="u1", stream="s1", network=None, now=T0)
        assert seen.stream is None  # nothing refused: playback goes on while Redis is away
        assert "did not answer a heartbeat" in caplog.text
        started = time.monotonic()
        for stream in ("s2", "s3"):  # within RETRY_SECONDS: admitted without another attempt
            assert (await store.observe(user="u1", stream=stream, network=None, now=T0)).stream is None
        assert time.monotonic() - started < 0.05 and caplog.text.count("did not answer") == 1
    finally:
        await store.aclose()
