"""`python -m gateway load`: many concurrent simulated players against a running gateway, bounded in time
and requests, reporting what an operator needs to size and trust a deployment.

Each player starts a session through the session API, loads the master, picks a variant and plays it:
VOD players walk the segments in order (switching rendition every few segments and pausing now and then),
live players reload their media playlist and fetch the new segments. `--pace 0` fetches as fast as the
gateway answers (a load test); `--pace 1` at real time (a soak). The report gives requests/s, latency
p50/p99 per kind of request, errors by type (the typed `x-token-denial` / `x-gateway-error`, an HTTP
status, or a transport error), the typed overload answers a player retries after `Retry-After`
(`origin_busy`, `too_many_downloads`: counted, not errors) and, with `--pid`, the gateway's resident
memory over time. JSON for machines, a short table for people.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

PRESETS: dict[str, dict[str, float]] = {
    "load": {"duration": 30.0, "pace": 0.0},
    "soak": {"duration": 600.0, "pace": 1.0},  # ten minutes at real time: memory must stay flat
}
DEFAULT_ASSETS = ("/vod/title-9000/master.m3u8", "/live/title-9000/master.m3u8")
# The gateway's documented overload answers (README "Errors"): not failures, a player waits Retry-After and
# asks again, as hls.js, shaka and dash.js do for a 429/503.
OVERLOAD = frozenset({"origin_busy", "too_many_downloads"})


@dataclass
class Stats:
    """Everything measured, shared by all players (one event loop: no locks needed)."""

    started: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    overloads: Counter[str] = field(default_factory=Counter)  # typed overload answers, retried
    requests: int = 0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        self.requests += 1
        self.latencies[kind].append(seconds)
        if error is not None:
            self.errors[f"{kind}:{error}"] += 1


@dataclass(frozen=True)
class LoadPlan:
    base_url: str
    players: int
    duration: float
    max_requests: int
    pace: float  # 0: as fast as possible; 1: real time
    assets: tuple[str, ...]
    credential: str
    switch_every: int = 4  # segments between rendition switches
    pause_chance: float = 0.02  # per segment, a pause of a few seconds (scaled by pace)
    seed: int = 1


class Budget(Exception):
    """The run's time or request budget is spent: players stop."""


class Player:
    def __init__(self, plan: LoadPlan, client: httpx.AsyncClient, stats: Stats, rng: random.Random) -> None:
        self.plan, self.client, self.stats, self.rng = plan, client, stats, rng
        self.deadline = stats.started + plan.duration

    async def get(self, url: str, kind: str) -> httpx.Response | None:
        """GET `url` as a player would: a typed overload answer is counted, waited out and asked again."""
        while True:
            if time.monotonic() >= self.deadline or self.stats.requests >= self.plan.max_requests:
                raise Budget
            started = time.monotonic()
            error: str | None = None
            response: httpx.Response | None = None
            try:
                response = await self.client.get(url)
                if response.status_code >= 400:
                    code = response.headers.get("x-token-denial") or response.headers.get("x-gateway-error")
                    if code in OVERLOAD:
                        self.stats.overloads[f"{kind}:{response.status_code} {code}"] += 1
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                        continue
                    error = f"{response.status_code} {code or ''}".strip()
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self.stats.record(kind, time.monotonic() - started, error)
            return response if error is None else None

    async def wait(self, seconds: float) -> None:
        if self.plan.pace > 0:
            await asyncio.sleep(min(seconds * self.plan.pace, max(0.0, self.deadline - time.monotonic())))

    async def run(self, asset: str) -> None:
        try:
            while True:  # a new session whenever one ends (an error, or the end of a VOD title)
                await self.session(asset)
        except Budget:
            return

    async def session(self, asset: str) -> None:
        started = time.monotonic()
        try:
            created = await self.client.post(
                urljoin(self.plan.base_url, "/api/sessions"),
                json={"asset": asset},
                headers={"authorization": f"Bearer {self.plan.credential}"},
            )
            error = None if created.status_code == 201 else f"{created.status_code} {created.json().get('error')}"
        except (httpx.HTTPError, ValueError) as exc:
            error, created = type(exc).__name__, None
        self.stats.record("session", time.monotonic() - started, error)
        if created is None or error is not None:
            await asyncio.sleep(0.2)  # do not spin on a refusing gateway
            if time.monotonic() >= self.deadline:
                raise Budget
            return
        master_url = urljoin(self.plan.base_url, created.json()["playback_url"])
        master = await self.get(master_url, "manifest")
        variants = [urljoin(master_url, uri) for uri in _variant_uris(master.text)] if master else []
        if not variants:
            return
        variant = self.rng.choice(variants)
        position = 0
        while True:
            playlist = await self.get(variant, "manifest")
            if playlist is None:
                return
            segments, target, ended = _media_uris(playlist.text)
            resolved = [urljoin(variant, uri) for uri in segments]
            todo = resolved[position:] if ended else resolved[-3:]
            for count, segment in enumerate(todo, 1):
                await self.get(segment, "segment")
                await self.wait(target)
                if self.rng.random() < self.plan.pause_chance:
                    await self.wait(3 * target)
                if ended and count % self.plan.switch_every == 0 and len(variants) > 1:
                    position += count
                    variant = self.rng.choice([v for v in variants if v != variant])
                    break  # load the new rendition's playlist, continue at the same position
            else:
                if ended:
                    return  # the title is over: next session
                await self.wait(target)  # live: reload after a target duration


def _variant_uris(text: str) -> list[str]:
    lines = text.splitlines()
    return [lines[i + 1].strip() for i, line in enumerate(lines[:-1]) if line.startswith("#EXT-X-STREAM-INF")]


def _media_uris(text: str) -> tuple[list[str], float, bool]:
    """Segment URIs, the target duration and whether the playlist has ended (VOD)."""
    target = 2.0
    uris: list[str] = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1] or 2)
        elif line and not line.startswith("#"):
            uris.append(line.strip())
    return uris, target, "#EXT-X-ENDLIST" in text


def resident_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _sample_rss(pid: int, stats: Stats, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        mib = resident_mib(pid)
        if mib is not None:
            stats.rss.append((round(time.monotonic() - stats.started, 1), round(mib, 1)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def run_load(plan: LoadPlan, *, pid: int | None = None, rss_every: float = 1.0) -> dict[str, Any]:
    """Run the players until the time or request budget is spent; the report as a dict."""
    stats = Stats()
    rng = random.Random(plan.seed)
    limits = httpx.Limits(max_connections=plan.players, max_keepalive_connections=plan.players)
    stop = asyncio.Event()
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(20.0, connect=10.0)) as client:
        sampler = asyncio.create_task(_sample_rss(pid, stats, rss_every, stop)) if pid else None
        players = [Player(plan, client, stats, random.Random(rng.random())) for _ in range(plan.players)]
        await asyncio.gather(*(p.run(plan.assets[i % len(plan.assets)]) for i, p in enumerate(players)))
        stop.set()
        if sampler is not None:
            await sampler
    return report(plan, stats, time.monotonic() - stats.started)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def report(plan: LoadPlan, stats: Stats, elapsed: float) -> dict[str, Any]:
    kinds = {
        kind: {
            "requests": len(values),
            "per_second": round(len(values) / elapsed, 1),
            "p50_ms": round(1000 * _percentile(values, 0.50), 2),
            "p99_ms": round(1000 * _percentile(values, 0.99), 2),
        }
        for kind, values in sorted(stats.latencies.items())
    }
    return {
        "players": plan.players,
        "assets": list(plan.assets),
        "pace": plan.pace,
        "elapsed_seconds": round(elapsed, 2),
        "requests": stats.requests,
        "requests_per_second": round(stats.requests / elapsed, 1),
        "by_kind": kinds,
        "errors": dict(stats.errors.most_common()),
        "overload_answers": dict(stats.overloads.most_common()),
        "rss_mib": stats.rss,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['players']} players, {result['elapsed_seconds']} s, {result['requests']} requests, "
        f"{result['requests_per_second']} req/s",
        f"{'kind':<10}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}",
    ]
    for kind, row in result["by_kind"].items():
        lines.append(f"{kind:<10}{row['requests']:>10}{row['per_second']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    lines.append("errors: " + (", ".join(f"{k} x{v}" for k, v in result["errors"].items()) or "none"))
    overloads = result["overload_answers"].items()
    lines.append("overload answers (retried): " + (", ".join(f"{k} x{v}" for k, v in overloads) or "none"))
    if result["rss_mib"]:
        rss = [mib for _, mib in result["rss_mib"]]
        lines.append(f"gateway RSS: start {rss[0]} MiB, max {max(rss)} MiB, end {rss[-1]} MiB ({len(rss)} samples)")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    load = subparsers.add_parser(
        "load",
        help="many concurrent simulated players against a running gateway (bounded in time and requests)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway (only 127.0.0.1 in tests)")
    load.add_argument("--players", type=int, default=50)
    load.add_argument("--preset", choices=sorted(PRESETS), default="load", help="load: 30 s flat out; soak: 10 min")
    load.add_argument("--duration", type=float, help="seconds (overrides the preset)")
    load.add_argument("--pace", type=float, help="0: as fast as possible, 1: real time (overrides the preset)")
    load.add_argument("--max-requests", type=int, default=2_000_000)
    load.add_argument("--asset", action="append", help="a master playlist path (repeatable; default VOD + live)")
    load.add_argument("--credential", default="demo-paid", help="the bearer credential for the session API")
    load.add_argument("--pid", type=int, help="the gateway's process id, to sample its resident memory")
    load.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    load.set_defaults(func=cmd_load)


def cmd_load(args: argparse.Namespace) -> int:
    preset = PRESETS[args.preset]
    if args.players <= 0 or args.max_requests <= 0:
        print("error: --players and --max-requests must be positive", file=sys.stderr)
        return 2
    plan = LoadPlan(
        base_url=args.url.rstrip("/") + "/",
        players=args.players,
        duration=args.duration if args.duration is not None else preset["duration"],
        max_requests=args.max_requests,
        pace=args.pace if args.pace is not None else preset["pace"],
        assets=tuple(args.asset or DEFAULT_ASSETS),
        credential=args.credential,
    )
    result = asyncio.run(run_load(plan, pid=args.pid, rss_every=10.0 if plan.duration > 120 else 1.0))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0 if not result["errors"] else 1
