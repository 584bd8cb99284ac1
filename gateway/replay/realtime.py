"""The same players against a deployed gateway, in real time (bounded in time, rounds and requests).

The players create sessions through the gateway's session API (`--credential`, `--asset`), reload every
target duration and fetch segments exactly as in `simulate`. A deployed gateway's clock is the real one, so
scenario times are real seconds. A client address change needs the gateway to take the address from a
header we send (`--client-ip-header x-forwarded-for`): it reads it only from its `trusted_proxies`, so
the replay host must be listed there (a test deployment only); without that the change is skipped.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from gateway.errors import ConfigError
from gateway.replay.client import HttpSide, HttpxSender, Sender
from gateway.replay.player import Player
from gateway.replay.result import ReplayResult
from gateway.replay.scenario import Scenario

DEFAULT_STEP_SECONDS = 2.0
ROUND_TIMEOUT_FACTOR = 5  # a round (all players' reloads and fetches) may take up to 5 reload intervals


async def realtime(
    scenario: Scenario,
    gateway_url: str,
    *,
    max_requests: int = 10_000,
    client_ip_header: str | None = None,
    request_timeout: float = 10.0,
    log_requests: bool = False,
) -> ReplayResult:
    if not gateway_url.startswith(("http://", "https://")):
        raise ConfigError(f"--gateway must be an http(s) URL, got {gateway_url!r}")
    base = gateway_url.rstrip("/") + "/"

    def sender_for(_: str) -> Sender:
        client = httpx.AsyncClient(
            base_url=base, timeout=request_timeout, trust_env=False, follow_redirects=False, cookies=None
        )
        return HttpxSender(client)

    wall_start = time.monotonic()
    start = time.time()
    per_player = max(1, max_requests // len(scenario.players))
    players = [
        Player(
            spec,
            scenario,
            HttpSide(sender_for, spec.client_ip, ip_header=client_ip_header, can_change_ip=False),
            base_url=base,
            start_epoch=start,
            clock=time.time,
            max_requests=per_player,
        )
        for spec in scenario.players
    ]
    for player in players:
        player.log.log_requests = [] if log_requests else None  # every request, for requests.jsonl
    aborted: str | None = None
    deadline = start + scenario.duration_seconds
    max_rounds = int(scenario.duration_seconds / 0.5) + 2  # bounded even if the target duration were tiny
    try:
        for _ in range(max_rounds):
            round_start = time.time()
            if round_start >= deadline:
                break
            step = min((p.target_duration or DEFAULT_STEP_SECONDS) for p in players)
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(player.tick() for player in players)), timeout=ROUND_TIMEOUT_FACTOR * step + 30
                )
            except TimeoutError:
                aborted = f"a round took longer than {ROUND_TIMEOUT_FACTOR * step + 30:.0f} s"
                break
            if all(player.state in ("ended", "stopped", "failed") for player in players):
                break
            await asyncio.sleep(max(0.0, min(round_start + step, deadline) - time.time()))
    finally:
        for player in players:
            player.finish(player.now())
            await player.http.aclose()
    target = {"kind": "realtime", "gateway": base, "asset": scenario.asset}
    return ReplayResult(scenario, target, players, start, time.time() - start, time.monotonic() - wall_start, aborted)
