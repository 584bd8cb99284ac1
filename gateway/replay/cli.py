"""`python -m gateway replay simulate|realtime|record`: replay long live sessions and report every denial.

    replay simulate --hours 3 --players 3 --pause-at 1h --pause-for 10m --seek-back-at 2h --seek-back-by 30
    replay simulate --mode cookie --renewal refresh --ip-binding --ip-change-at 30m --report out/
    replay simulate --recording rec/                      # a recorded origin instead of the simulator
    replay realtime --gateway http://127.0.0.1:8000 --asset /live/title-9000/master.m3u8 --duration 120
    replay record --origin http://127.0.0.1:8090/live/title-9000/master.m3u8 --out rec/ --duration 60

Exit status: 0 all good; 1 an unexpected denial, stall, error or crash; 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import re
import sys
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.replay.scenario import (
    ExpectedDenial,
    IpChange,
    Pause,
    Revoke,
    Scenario,
    SeekBack,
    load_scenario,
    replicate,
)

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def duration(text: str) -> float:
    """`90`, `90s`, `15m`, `1h30m`, `2.5h` -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 15m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _expect(text: str) -> ExpectedDenial:
    """`REASON[@FROM[-TO]]`, e.g. `expired@2h-2h10m`."""
    reason, _, window = text.partition("@")
    start, _, end = window.partition("-")
    try:
        return ExpectedDenial(reason, duration(start) if start else 0.0, duration(end) if end else math.inf)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"--expect-denial {text!r}: {exc}") from None


def _player_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("players (flags apply to every player)")
    group.add_argument("--players", type=int, help="number of players (default 3, or the scenario file's)")
    group.add_argument("--renewal", choices=["rolling", "refresh"], help="rolling scoped tokens, or the refresh API")
    group.add_argument("--abr-every", type=duration, help="switch rendition every N s, up then down (0: never)")
    group.add_argument("--no-audio", action="store_true", help="do not play the alternate-audio rendition")
    group.add_argument("--pause-at", type=duration, action="append", default=[], help="repeatable")
    group.add_argument("--pause-for", type=duration, action="append", default=[], help="one per --pause-at")
    group.add_argument("--resume", choices=["live", "dvr"], default="live", help="after a pause (default live)")
    group.add_argument("--seek-back-at", type=duration, action="append", default=[], help="repeatable")
    group.add_argument("--seek-back-by", type=duration, action="append", default=[], help="one per --seek-back-at")
    group.add_argument("--ip-change-at", type=duration, action="append", default=[], help="repeatable")
    group.add_argument("--ip-change-to", default="198.51.100.23")
    group.add_argument("--on-ip-denial", choices=["recreate", "stop"], default="recreate")
    group.add_argument("--revoke-at", type=duration, action="append", default=[], help="the app revokes its session")
    group.add_argument("--revoke-unexpected", action="store_true", help="treat the revocation's denials as failures")
    group.add_argument("--expect-denial", type=_expect, action="append", default=[], help="REASON[@FROM[-TO]]")
    group.add_argument("--ip-binding", action="store_true", help="the gateway binds sessions to the client network")
    group.add_argument("--scenario", type=Path, help="a TOML/JSON scenario file (flags given override it)")
    group.add_argument("--report", type=Path, default=Path("replay-report"), help="where report.json/html go")
    group.add_argument("--log-requests", action="store_true", help="also write every request to requests.jsonl")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `replay` with its sub-commands `simulate`, `realtime` and `record`."""
    replay = subparsers.add_parser("replay", help="replay long live sessions; report every denial (QA, CI)")
    commands = replay.add_subparsers(dest="replay_command", required=True)

    sim = commands.add_parser("simulate", help="simulated time, in-process: the live origin simulator + the gateway")
    sim.add_argument("--hours", type=float)
    sim.add_argument("--minutes", type=float)
    sim.add_argument("--media-ttl", type=int, help="media-token TTL in seconds (default 30)")
    sim.add_argument("--token-ttl", type=int, help="session-token TTL in seconds (default 300)")
    sim.add_argument("--max-life", type=duration, help="the session's hard cap (default 4h)")
    sim.add_argument("--leeway", type=float, help="the gateway's clock-skew leeway in seconds (default 5)")
    sim.add_argument("--mode", choices=["query", "cookie"])
    sim.add_argument("--skew", type=float, help="the issuing instance's clock minus the edge's, in seconds")
    sim.add_argument("--skew-scope", choices=["api", "playlists"], help="what the skewed instance serves")
    sim.add_argument("--dvr", type=duration, help="the origin's DVR window (default 60 s)")
    sim.add_argument("--ll-hls", action="store_true", help="LL-HLS origin; players use blocking reloads")
    sim.add_argument("--recording", type=Path, help="replay a recording (see `replay record`) as the origin")
    sim.add_argument("--player-transport", choices=["asgi", "httpx"], default="asgi")
    sim.add_argument("--max-wall", type=duration, default=600.0, help="wall-clock limit (default 10m)")
    _player_flags(sim)
    sim.set_defaults(func=cmd_simulate)

    real = commands.add_parser("realtime", help="real time, against a deployed gateway URL")
    real.add_argument("--gateway", required=True, help="the gateway's base URL, e.g. http://127.0.0.1:8000")
    real.add_argument("--credential", default="demo-paid", help="bearer credential for the session API")
    real.add_argument("--asset", default="/live/title-9000/master.m3u8")
    real.add_argument("--duration", type=duration, default=120.0, help="real seconds (default 120)")
    real.add_argument("--max-requests", type=int, default=10_000)
    real.add_argument(
        "--client-ip-header",
        help="send the player's address in this header (the gateway must list this host in trusted_proxies)",
    )
    _player_flags(real)
    real.set_defaults(func=cmd_realtime)

    rec = commands.add_parser("record", help="record a live origin's playlists and media to a directory")
    rec.add_argument("--origin", required=True, help="the master playlist URL on the live origin")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--duration", type=duration, default=60.0)
    rec.add_argument("--interval", type=duration, help="poll interval (default: the target duration)")
    rec.add_argument("--time-scale", type=float, default=1.0, help="the origin runs N x faster than real time")
    rec.add_argument("--max-requests", type=int, default=20_000)
    rec.set_defaults(func=cmd_record)


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    base = (
        load_scenario(args.scenario)
        if args.scenario
        else Scenario(players=replicate(Scenario().players[0], 3, first_number=1))
    )
    changes: dict[str, Any] = {}
    if getattr(args, "hours", None) is not None or getattr(args, "minutes", None) is not None:
        changes["duration_seconds"] = (args.hours or 0) * 3600 + (args.minutes or 0) * 60
    if getattr(args, "duration", None) is not None:
        changes["duration_seconds"] = args.duration
    for name in ("credential", "asset"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    gateway: dict[str, Any] = {
        "media_ttl_seconds": getattr(args, "media_ttl", None),
        "token_ttl_seconds": getattr(args, "token_ttl", None),
        "max_life_seconds": int(args.max_life) if getattr(args, "max_life", None) else None,
        "leeway_seconds": getattr(args, "leeway", None),
        "mode": getattr(args, "mode", None),
        "skew_seconds": getattr(args, "skew", None),
        "skew_scope": getattr(args, "skew_scope", None),
        "ip_binding": True if args.ip_binding else None,
    }
    changes["gateway"] = dataclasses.replace(base.gateway, **{k: v for k, v in gateway.items() if v is not None})
    origin: dict[str, Any] = {
        "dvr_window_seconds": getattr(args, "dvr", None),
        "ll_hls": True if getattr(args, "ll_hls", False) else None,
    }
    changes["origin"] = dataclasses.replace(base.origin, **{k: v for k, v in origin.items() if v is not None})
    if args.expect_denial:
        changes["expect"] = (*base.expect, *args.expect_denial)
    specs = base.players if not args.players else replicate(base.players[0], args.players, first_number=1)
    changes["players"] = tuple(_apply_player_flags(spec, args, changes["gateway"].media_ttl_seconds) for spec in specs)
    scenario = dataclasses.replace(base, **changes)
    if not args.scenario:  # name it after what it does
        seconds = round(scenario.duration_seconds)
        renewals = "/".join(sorted({p.renewal for p in scenario.players}))
        name = f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}, {len(specs)} player(s), "
        scenario = dataclasses.replace(scenario, name=name + f"{scenario.gateway.mode} mode, {renewals} renewal")
    return scenario


def _pairs(first: list[float], second: list[float], names: str, default: float) -> list[tuple[float, float]]:
    if len(second) > len(first):
        raise ConfigError(f"{names}: more durations than times")
    return [(at, second[i] if i < len(second) else default) for i, at in enumerate(first)]


def _apply_player_flags(spec: Any, args: argparse.Namespace, media_ttl: int) -> Any:
    changes: dict[str, Any] = {}
    if args.renewal:
        changes["renewal"] = args.renewal
    if args.abr_every is not None:
        changes["abr_every_seconds"] = args.abr_every or None
    if args.no_audio:
        changes["audio"] = False
    pauses = _pairs(args.pause_at, args.pause_for, "--pause-at/--pause-for", max(2.0 * media_ttl, 60.0))
    if pauses:
        changes["pauses"] = tuple(Pause(at, length, args.resume) for at, length in pauses)
    seeks = _pairs(args.seek_back_at, args.seek_back_by, "--seek-back-at/--seek-back-by", 30.0)
    if seeks:
        changes["seeks"] = tuple(SeekBack(at, by) for at, by in seeks)
    if args.ip_change_at:
        changes["ip_changes"] = tuple(IpChange(at, args.ip_change_to, args.on_ip_denial) for at in args.ip_change_at)
    if args.revoke_at:
        changes["revokes"] = tuple(Revoke(at, not args.revoke_unexpected) for at in args.revoke_at)
    return dataclasses.replace(spec, **changes)


def _finish(result: Any, args: argparse.Namespace) -> int:
    from gateway.replay.report import summary_lines, write_reports

    report = write_reports(result, args.report)
    print("\n".join(summary_lines(report)))
    print(f"report: {args.report / 'report.html'} and report.json")
    return int(report["exit_status"])


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.replay.simulate import simulate

    try:
        scenario = scenario_from_args(args)
        result = asyncio.run(
            simulate(
                scenario,
                recording=args.recording,
                max_wall_seconds=args.max_wall,
                player_transport=args.player_transport,
                log_requests=args.log_requests,
            )
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _finish(result, args)


def cmd_realtime(args: argparse.Namespace) -> int:
    from gateway.replay.realtime import realtime

    try:
        scenario = scenario_from_args(args)
        result = asyncio.run(
            realtime(
                scenario,
                args.gateway,
                max_requests=args.max_requests,
                client_ip_header=args.client_ip_header,
                log_requests=args.log_requests,
            )
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _finish(result, args)


def cmd_record(args: argparse.Namespace) -> int:
    from gateway.replay.recording import record

    try:
        stats = asyncio.run(
            record(
                args.origin,
                args.out,
                duration=args.duration,
                interval=args.interval,
                time_scale=args.time_scale,
                max_requests=args.max_requests,
            )
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"recorded {stats.rounds} rounds: {stats.playlist_versions} playlist versions, {stats.files} files, "
        f"{stats.bytes} bytes in {stats.requests} requests (stopped by {stats.stopped_by}) -> {stats.directory}"
    )
    for failure in stats.failures[:10]:
        print(f"  failed: {failure}")
    return 0 if stats.files and stats.playlist_versions > 1 else 1  # failures are listed, not fatal
