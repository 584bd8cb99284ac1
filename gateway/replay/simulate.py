"""Simulated time, all in-process, no sockets: the live origin simulator (or a recording) + the gateway + players.

One `SimulatedClock` is shared by the origin and the gateway. The driver advances it one reload interval
(the stream's target duration) at a time and lets every player act at each step, so players that play the
same rendition meet in the gateway's playlist cache as real viewers do. With LL-HLS blocking reloads a
request waits on the clock; the driver then moves the clock on in small steps until it is answered.
Clock skew runs a second gateway instance (same keys, same revocations) on a shifted clock for the session
API (and, with `skew_scope = "playlists"`, for playlist responses, i.e. where media tokens are minted).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.config import Route, SessionSettings, Settings
from gateway.config_schema import Delivery
from gateway.dev.demo import DEMO_USERS
from gateway.http.app import build_app
from gateway.replay.client import AsgiSender, HttpSide, HttpxSender, Sender
from gateway.replay.origins import (
    DEFAULT_SOURCE,
    Origin,
    live_origin_package,
    mount_of,
    recorded_origin,
    simulator_origin,
)
from gateway.replay.player import Player
from gateway.replay.recorded_origin import load_recording
from gateway.replay.result import ReplayResult
from gateway.replay.scenario import Scenario
from gateway.sessions.entitlements import CatalogEntitlements, Title
from gateway.sessions.revocations import MemoryRevocations
from gateway.tokens.keys import HmacKey, KeyRing

BASE_URL = "https://gateway.test"  # https: the gateway's cookies are Secure, as they would be in production
MAX_SPINS = 50_000_000  # driver iterations of an LL-HLS run (each yields to the players once)
CLOCK_STEP_SECONDS = 0.05  # how far the LL-HLS driver moves the clock while every player waits
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def gateway_settings(scenario: Scenario, *, asset: str, origin_base: str) -> Settings:
    """The gateway under test: `asset`'s mount (e.g. /live/) -> `origin_base` in query mode, the same under
    /cookie + mount in cookie mode; the title (the asset's directory) open to the demo users."""
    g = scenario.gateway
    mount = mount_of(asset)
    title_prefix = asset.rsplit("/", 1)[0] + "/"
    return Settings(
        keys=KeyRing((HmacKey("replay", secrets.token_bytes(32)),)),
        routes=(
            Route(mount=mount, origin=origin_base, delivery=Delivery.QUERY),
            Route(mount="/cookie" + mount, origin=origin_base, delivery=Delivery.COOKIE),
        ),
        leeway_seconds=g.leeway_seconds,
        sessions=SessionSettings(
            token_ttl_seconds=g.token_ttl_seconds,
            media_ttl_seconds=g.media_ttl_seconds,
            max_life_seconds=g.max_life_seconds,
            ip_binding=g.ip_binding,
        ),
        catalog=CatalogEntitlements(DEMO_USERS, (Title(title_prefix, "Replayed live title", paid=True),)),
    )


def _front(edge: Any, issuer: Any, scope_kind: str) -> ASGIApp:
    """A load balancer: the session API (and playlists, for skew_scope=playlists) to the skewed instance."""

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        skewed = path.startswith("/api/") or (scope_kind == "playlists" and path.endswith(".m3u8"))
        await (issuer if skewed else edge)(scope, receive, send)

    return app


async def simulate(
    scenario: Scenario,
    *,
    recording: Path | None = None,
    source: Path = DEFAULT_SOURCE,
    max_wall_seconds: float = 600.0,
    max_requests_per_player: int = 1_000_000,
    player_transport: str = "asgi",
    log_requests: bool = False,
) -> ReplayResult:
    """Run the scenario in simulated time and return what every player saw.

    `player_transport`: "asgi" sends the players' requests straight into the gateway app (fast, the default);
    "httpx" goes through `httpx.AsyncClient(transport=httpx.ASGITransport(...))` as an app would.
    """
    wall_start = time.monotonic()
    live = live_origin_package()
    if recording is not None:
        recorded = load_recording(recording)
        clock = live.SimulatedClock(recorded.playable_from)
        origin = recorded_origin(scenario, clock, recorded, recording)
    else:
        clock = live.SimulatedClock(scenario.start_epoch)
        origin = simulator_origin(scenario, clock, source)
    asset = ("/cookie" if scenario.gateway.mode == "cookie" else "") + origin.asset
    scenario = replace(scenario, asset=asset, duration_seconds=origin.duration, start_epoch=origin.start_epoch)
    settings = gateway_settings(scenario, asset=origin.asset, origin_base=origin.base)
    revocations = MemoryRevocations()  # shared by the instances, as Redis would be
    gateways = [
        build_app(settings, clock=clock, origin_transport=httpx.ASGITransport(app=origin.app), revocations=revocations)
    ]
    front: Any = gateways[0]
    skew = scenario.gateway.skew_seconds
    if skew:
        issuer = build_app(
            settings,
            clock=lambda: clock() + skew,
            origin_transport=httpx.ASGITransport(app=origin.app),
            revocations=revocations,
        )
        gateways.append(issuer)
        front = _front(gateways[0], issuer, scenario.gateway.skew_scope)

    def sender_for(ip: str) -> Sender:
        if player_transport == "asgi":
            return AsgiSender(front, (ip, 50000), urlsplit(BASE_URL).netloc)
        transport = httpx.ASGITransport(app=front, client=(ip, 50000))
        return HttpxSender(httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30.0))

    players = [
        Player(
            spec,
            scenario,
            HttpSide(sender_for, spec.client_ip),
            base_url=BASE_URL,
            start_epoch=origin.start_epoch,
            clock=clock,
            blocking_reload=scenario.origin.ll_hls,
            max_requests=max_requests_per_player,
        )
        for spec in scenario.players
    ]
    for player in players:
        player.log.log_requests = [] if log_requests else None  # every request, for requests.jsonl
    drive = _drive_blocking if scenario.origin.ll_hls else _drive
    aborted = await drive(players, clock, origin, scenario, wall_start + max_wall_seconds)
    for player in players:
        player.finish(player.now())
        await player.http.aclose()
    for app in gateways:
        await app.state.edge.origin.aclose()
    target: dict[str, Any] = {"kind": "simulated", "gateway": "in-process", "origin": origin.description}
    target.update(mode=scenario.gateway.mode, step_seconds=origin.target_duration, asset=asset)
    return ReplayResult(
        scenario,
        target,
        players,
        origin.start_epoch,
        clock() - origin.start_epoch,
        time.monotonic() - wall_start,
        aborted,
    )


TERMINAL = ("ended", "stopped", "failed")


async def _drive(
    players: list[Player], clock: Any, origin: Origin, scenario: Scenario, wall_deadline: float
) -> str | None:
    """Lockstep: every player acts once per reload interval, at the same simulated instant."""
    step = origin.target_duration
    end = origin.start_epoch + origin.duration
    for i in range(int(origin.duration // step) + 1):  # bounded: one round per reload interval
        t = origin.start_epoch + i * step
        if t > end + 1e-9:
            break
        clock.advance_to(t)
        await asyncio.gather(*(player.tick() for player in players))
        if all(player.state in TERMINAL for player in players):
            return None
        if time.monotonic() > wall_deadline:
            return f"wall-clock limit reached after {clock() - origin.start_epoch:.0f} simulated seconds"
    return None


async def _drive_blocking(
    players: list[Player], clock: Any, origin: Origin, scenario: Scenario, wall_deadline: float
) -> str | None:
    """LL-HLS: each player reloads again as soon as it has an answer, with a blocking reload for the next
    segment, which waits on the simulated clock. The clock moves on (in small steps) only while every busy
    player is waiting on it, so no player ever misses an instant it could act at."""
    end = origin.start_epoch + origin.duration
    pace = scenario.origin.part_target_seconds
    hard_end = end + 4 * origin.target_duration  # blocked reloads are answered within 3 target durations

    async def run(player: Player) -> None:
        for _ in range(int(origin.duration / (pace / 2)) + 10):  # bounded
            if clock() >= end - 1e-9 or player.state in TERMINAL:
                return
            before = clock()
            await player.tick()
            if clock() - before < pace / 2:  # answered at once (e.g. paused): wait a little, as a client would
                player.blocked = True
                try:
                    await clock.wait_until(min(before + pace, end))
                finally:
                    player.blocked = False

    tasks = [asyncio.ensure_future(run(player)) for player in players]
    aborted: str | None = None
    for _ in range(MAX_SPINS):
        busy = [player for player, task in zip(players, tasks, strict=True) if not task.done()]
        if not busy:
            break
        if all(player.blocked for player in busy) and clock.pending_waiters and clock() < hard_end:
            clock.advance(min(CLOCK_STEP_SECONDS, hard_end - clock()))
        if time.monotonic() > wall_deadline:
            aborted = f"wall-clock limit reached after {clock() - origin.start_epoch:.0f} simulated seconds"
            break
        await asyncio.sleep(0)
    else:
        aborted = "players did not settle"
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return aborted
