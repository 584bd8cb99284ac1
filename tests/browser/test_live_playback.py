"""Live playback through the gateway in Debian's Chromium: rolling scoped tokens, cookie re-issue, session end.

The demo origin loops title-9000 as a live stream (2 s segments, a key rotation every 5 segments, a 60 s
DVR window); the demo gateway protects it at `/live/` (query mode) and `/cookie/live/` (cookie mode). The
page runs with `renew=off`: no refresh timer and no token swapping, hls.js loads every URL exactly as
the gateway's playlists give it. What keeps a long session playing is then the gateway alone:

- query mode: the master carries playlist-scoped tokens (valid until the session's cap) on the variant
  and rendition URIs; every media-playlist reload carries freshly minted media-scoped tokens;
- cookie mode: the gateway re-issues the cookie on media responses before it expires.

Tokens here are short and the gateway's leeway is 0, so an expiry really bites. hls.js may fetch a
segment up to one target duration (2 s) after the playlist that listed it (the audio track waits for
the matching video segment): when media tokens were minted with only TTL/2 of life, a 2 s TTL gave the
audio track `403 expired` (found by these tests), so the gateway now mints them with TTL..1.5 x TTL
(now + TTL rounded up to a half-TTL bucket). The media TTL here is 6 s.

Every test fails on any hls.js ERROR event, fatal or not, except the two known benign startup ones
(see test_demo_playback.py; also on the first audio segment after each loop wrap of the simulator,
which restarts the stream) and, when a test stops the session on purpose, the refusals after that point.
Needs node, npm and /usr/bin/chromium: missing ones skip locally and fail in CI (CI=true).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import m3u8
import pytest

from gateway.dev.demo import MEDIA_ROOT
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.native import inspect_token
from tests.browser import test_demo_playback as vod

pytestmark = pytest.mark.browser

# The session-scoped fixture of the VOD browser tests: node, npm and chromium present (required in CI),
# `npm ci` done. Assigned here so pytest finds it in this module too.
node = vod.node

RecordProperty = vod.RecordProperty
PAID_USER = vod.PAID_USER
STARTUP_BENIGN = vod.STARTUP_BENIGN
STARTUP_MEDIA_SECONDS = vod.STARTUP_MEDIA_SECONDS

# The live simulator loops the bundled title: every LOOP_SEGMENTS segments the stream restarts after an
# EXT-X-DISCONTINUITY, and hls.js's known false positive on the first audio segment of ffmpeg-made TS
# (bufferAppendNoProgress, non-fatal; see test_demo_playback.STARTUP_BENIGN) can recur there, as at startup.
LOOP_SEGMENTS = len(m3u8.load(str(MEDIA_ROOT / "vod" / "title-9000" / "a-en" / "index.m3u8")).segments)
LOOP_WRAP_AUDIO = re.compile(r"/a-[a-z]+/seg(\d+)\.ts")

MEDIA_TTL_SECONDS = 6  # media-scoped tokens: minted with 6..9 s of life (see the module docstring)
TOKEN_TTL_SECONDS = 4  # the session token, and the cookie in cookie mode
MAX_LIFE_SECONDS = 120  # the session's cap (playlist-scoped tokens) for every test but the one about it
SHORT_MAX_LIFE_SECONDS = 20
MIN_EXPIRIES = 10  # distinct media tokens (cookies) that expired while playback went on
MAX_STALL_SECONDS = 2.0  # media time may stand still this long at most (sampled every 250 ms)
SWITCH_AFTER_SECONDS = 11  # past the first media token's life (9 s at most: TTL + half a bucket) with room to spare
ALLOWED_AFTER_STOP = frozenset({"levelLoadError", "audioTrackLoadError", "fragLoadError", "keyLoadError"})


@contextlib.contextmanager
def running_live_demo(state_dir: Path, *, max_life_seconds: int) -> Iterator[vod.Demo]:
    """The demo origin (with its live loop) and the demo gateway with short tokens and no leeway."""
    with vod.running_demo(
        state_dir,
        leeway_seconds=0,
        media_ttl_seconds=MEDIA_TTL_SECONDS,
        token_ttl_seconds=TOKEN_TTL_SECONDS,
        max_life_seconds=max_life_seconds,
    ) as demo:
        yield demo


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    with running_live_demo(tmp_path_factory.mktemp("live-state"), max_life_seconds=MAX_LIFE_SECONDS) as demo:
        yield demo


@pytest.fixture(scope="module")
def short_life_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    with running_live_demo(tmp_path_factory.mktemp("live-state"), max_life_seconds=SHORT_MAX_LIFE_SECONDS) as demo:
        yield demo


def live_asset(demo: vod.Demo, mode: str = "query") -> str:
    """The live title under `mode`'s live mount (the catalog lists it by its query-mode path)."""
    title = next(str(t["asset"]) for t in demo.catalog["titles"] if t.get("live"))
    mounts = {str(m["name"]): str(m["mount"]) for m in demo.catalog["live_modes"]}
    assert title.startswith(mounts["query"]), f"live title {title} is not under {mounts['query']}"
    return mounts[mode] + title[len(mounts["query"]) :]


def mount_of(asset: str) -> str:
    return asset[: asset.index("/title-")] + "/"


def play_live(node: str, demo: vod.Demo, asset: str, watch_s: float, *args: str) -> dict[str, Any]:
    """play.mjs in live mode (`renew=off`, 1x) for `watch_s` seconds of wall time; its JSON result."""
    timeout_ms = int((watch_s + 25) * 1000)
    command = [node, str(vod.PLAY), "--gateway", demo.url, "--user", PAID_USER, "--asset", asset]
    command += ["--renew", "off", "--rate", "1", "--watch-s", str(watch_s), "--timeout-ms", str(timeout_ms), *args]
    done = subprocess.run(
        command, cwd=vod.PLAYERS, capture_output=True, text=True, timeout=timeout_ms / 1000 + 20, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (
        f"play.mjs exited {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["watch"] is not None, {k: result.get(k) for k in ("outcome", "error", "elapsed_ms", "denial")}
    return result


def epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def path_of(request: dict[str, Any]) -> str:
    return urlsplit(str(request["url"])).path


def grant_of(request: dict[str, Any]) -> Grant:
    token = vod.token_of(str(request["url"]))
    assert token, f"no token on {request['url']}"
    return inspect_token(token)


def successful(requests: list[dict[str, Any]], *suffixes: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in requests if r["status"] == 200 and path_of(r).endswith(suffixes)), key=lambda r: int(r["seq"])
    )


def unexpected_errors(result: dict[str, Any], stop_at_ms: float | None = None) -> list[dict[str, Any]]:
    """hls.js ERROR events other than the benign startup pair (also on the first audio segment after
    each loop wrap of the simulator, a restart of the stream) and, after `stop_at_ms`, the refusals.

    Startup is the first STARTUP_MEDIA_SECONDS of media from where hls.js joined the live stream (or
    before it had joined: media time 0).
    """
    joined = float(result["watch"]["start"]["currentTime"])
    unexpected = []
    for error in result["T"]["errors"]:
        media_time = float(error.get("media_time") or 0)
        if error["details"] in STARTUP_BENIGN and not error["fatal"] and media_time <= joined + STARTUP_MEDIA_SECONDS:
            continue
        wrap = LOOP_WRAP_AUDIO.search(str(error.get("url") or ""))
        at_loop_wrap = wrap is not None and int(wrap.group(1)) % LOOP_SEGMENTS == 0
        if error["details"] == "bufferAppendNoProgress" and not error["fatal"] and at_loop_wrap:
            continue
        after_stop = stop_at_ms is not None and epoch_ms(error["at"]) >= stop_at_ms
        if after_stop and error.get("code") in (401, 403) and error["details"] in ALLOWED_AFTER_STOP:
            continue
        unexpected.append(error)
    return unexpected


def longest_stall_seconds(samples: list[dict[str, Any]], until_ms: float | None = None) -> float:
    """The longest wall time over which media time did not advance (samples every 250 ms)."""
    longest, advanced_at, last_ct = 0.0, float(samples[0]["at_ms"]), float(samples[0]["ct"])
    for sample in samples[1:]:
        if until_ms is not None and sample["at_ms"] > until_ms:
            break
        if float(sample["ct"]) > last_ct + 0.01:
            advanced_at, last_ct = float(sample["at_ms"]), float(sample["ct"])
        longest = max(longest, (float(sample["at_ms"]) - advanced_at) / 1000)
    return longest


def assert_plays_on_its_own(result: dict[str, Any]) -> None:
    """Played with no HTTP error, no failed request but aborts, no refresh and no unexpected hls.js event."""
    summary = {k: result.get(k) for k in ("outcome", "error", "denial", "elapsed_ms")}
    assert result["outcome"] == "played", summary
    assert result["bad_responses"] == [], result["bad_responses"]  # no 401/403, nor any other status >= 400
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [] and result["page_errors"] == [], (failed, result["page_errors"])
    assert result["T"]["denials"] == []
    assert unexpected_errors(result) == [], f"hls.js ERROR events: {unexpected_errors(result)}"
    # renew=off really is off: the page never asked the session API for a new token.
    assert [r["url"] for r in result["requests"] if path_of(r).endswith("/refresh")] == []
    assert [e for e in result["T"]["events"] if e["type"] == "refreshed"] == []
    samples = result["watch"]["samples"]
    stall = longest_stall_seconds(samples)
    assert stall <= MAX_STALL_SECONDS, f"media time stood still for {stall:.1f} s"
    watch = result["watch"]
    assert watch["media_played_s"] >= watch["wall_s"] - MAX_STALL_SECONDS, watch


def report(record_property: vod.RecordProperty, **figures: object) -> None:
    for name, value in figures.items():
        record_property(name, value)
    print("live figures:", figures)


def test_query_mode_plays_across_ten_media_token_expiries_without_renewal(
    node: str, live_demo: vod.Demo, record_property: vod.RecordProperty
) -> None:
    asset = live_asset(live_demo)
    # Media tokens expire 3 s apart (one per half-TTL bucket), the first 6..9 s after start: 42 s of
    # watching crosses at least 11 expiries (10 are required).
    result = play_live(node, live_demo, asset, 42)
    assert_plays_on_its_own(result)
    assert result["T"]["session"]["mode"] == "query"

    requests = [r for r in result["requests"] if path_of(r).startswith(mount_of(asset))]
    media = successful(requests, ".ts", ".key")
    playlists = successful(requests, ".m3u8")
    assert len(media) > 20 and any(path_of(r).endswith(".key") for r in media), [path_of(r) for r in media]
    session_ends = next(e for e in result["T"]["events"] if e["type"] == "session_started")["session_ends_at"]
    # URLs as the playlists gave them: segments and keys carry media-scoped tokens, which only the gateway's
    # playlist rewriting mints (the page only ever holds the session token, scope `all`) ...
    expiries: dict[str, int] = {}
    for request in media:
        grant = grant_of(request)
        assert grant.scope is Scope.MEDIA, (path_of(request), grant.scope)
        assert request["at_ms"] / 1000 <= grant.expires_at, "a media token was used after its expiry"
        expiries[str(vod.token_of(request["url"]))] = grant.expires_at
    # ... and media playlists carry the master's playlist-scoped token, valid until the session's cap.
    for request in playlists[1:]:
        grant = grant_of(request)
        assert grant.scope is Scope.PLAYLIST and grant.expires_at == session_ends, (path_of(request), grant)

    last_sent_s = max(float(r["at_ms"]) for r in media) / 1000
    expired = sorted(e for e in expiries.values() if e < last_sent_s)
    assert len(expired) >= MIN_EXPIRIES, f"only {len(expired)} media tokens expired during playback: {expired}"
    span_s = last_sent_s - float(media[0]["at_ms"]) / 1000
    report(
        record_property,
        media_tokens_used=len(expiries),
        media_token_expiries_crossed=len(expired),
        wall_span_s=round(span_s, 1),
        wall_span_in_media_ttls=round(span_s / MEDIA_TTL_SECONDS, 1),
        first_token_dead_for_s=round(last_sent_s - expired[0], 1),
        http_403=sum(1 for r in result["bad_responses"] if r["status"] == 403),
        longest_stall_s=round(longest_stall_seconds(result["watch"]["samples"]), 2),
        media_played_s=round(result["watch"]["media_played_s"], 1),
    )


def test_switch_after_the_first_media_token_expired_loads_a_rendition_never_loaded(
    node: str, live_demo: vod.Demo, record_property: vod.RecordProperty
) -> None:
    asset = live_asset(live_demo)
    # `--switch-level` pins level 0 from the start, so the top rendition is never loaded before the switch.
    args = ("--switch-level", "top", "--switch-after-s", str(SWITCH_AFTER_SECONDS))
    result = play_live(node, live_demo, asset, SWITCH_AFTER_SECONDS + 6, *args)
    assert_plays_on_its_own(result)
    switch = result["switch"]
    assert switch and switch["level"] > 0 and switch["levels_loaded_before"] == [0], switch

    requests = sorted((r for r in result["requests"] if path_of(r).startswith(mount_of(asset))), key=lambda r: r["seq"])
    before = [r for r in requests if r["seq"] <= switch["sent_before"]]
    after = [r for r in requests if r["seq"] > switch["sent_before"]]
    first_media = grant_of(next(r for r in before if path_of(r).endswith(".ts")))
    assert switch["at_ms"] / 1000 > first_media.expires_at, "the switch came before the first media token expired"

    # The new rendition: a directory first requested after the switch; its playlist came first.
    seen_before = {path_of(r).rsplit("/", 1)[0] for r in before}
    new = [r for r in after if path_of(r).rsplit("/", 1)[0] not in seen_before]
    assert new and path_of(new[0]).endswith("/index.m3u8"), [path_of(r) for r in after]
    new_playlist = new[0]
    assert new_playlist["status"] == 200, new_playlist
    # Its token is the playlist-scoped one the master wrote, the same as level 0's playlist URL at startup.
    startup_playlist = next(r for r in before if path_of(r).endswith("/index.m3u8"))
    assert vod.token_of(new_playlist["url"]) == vod.token_of(startup_playlist["url"])
    playlist_grant = grant_of(new_playlist)
    assert playlist_grant.scope is Scope.PLAYLIST and playlist_grant.expires_at > switch["at_ms"] / 1000
    # Its segments: fresh media tokens from that playlist, all loaded.
    new_segments = [r for r in new if path_of(r).endswith(".ts")]
    assert new_segments and all(r["status"] == 200 for r in new_segments)
    assert all(grant_of(r).expires_at > switch["at_ms"] / 1000 for r in new_segments)

    assert switch["level"] in result["T"]["switched"]
    top_height = max(level["height"] for level in result["T"]["levels"])
    assert result["videoHeight"] == top_height, (result["videoHeight"], top_height)
    samples = result["watch"]["samples"]
    at_switch = next(s for s in samples if s["at_ms"] >= switch["at_ms"])
    played_after = samples[-1]["ct"] - at_switch["ct"]
    assert played_after >= 4, f"only {played_after:.1f} s of media after the switch"
    report(
        record_property,
        switched_to_level=switch["level"],
        switched_to_height=top_height,
        first_media_token_dead_for_s=round(switch["at_ms"] / 1000 - first_media.expires_at, 1),
        new_rendition_playlist=path_of(new_playlist),
        new_rendition_segments=len(new_segments),
        media_played_after_switch_s=round(played_after, 1),
        http_403=0,
    )


def test_cookie_mode_plays_on_while_the_gateway_reissues_the_cookie(
    node: str, live_demo: vod.Demo, record_property: vod.RecordProperty
) -> None:
    asset = live_asset(live_demo, "cookie")
    # The cookie lives TOKEN_TTL_SECONDS and is re-issued once half of that is gone: ~every 2 s.
    result = play_live(node, live_demo, asset, 26)
    assert_plays_on_its_own(result)
    assert result["T"]["session"]["mode"] == "cookie"
    name = "gw_token"

    requests = [r for r in result["requests"] if path_of(r).startswith(mount_of(asset))]
    assert [r["url"] for r in requests if "token" in urlsplit(r["url"]).query] == []
    assert all(r.get("cookie_ids", {}).get(name) for r in requests), "every media request sent the cookie"
    # Every cookie the gateway set: first by the session API, then re-issued on media responses.
    issued = [
        {**cookie, "at_ms": r["at_ms"], "by_api": path_of(r).startswith("/api/")}
        for r in result["requests"]
        for cookie in r.get("set_cookie", [])
        if cookie["name"] == name
    ]
    reissued = [c for c in issued if not c["by_api"]]
    assert issued and issued[0]["by_api"], "the session API set the first cookie"
    assert all(c["path"] == mount_of(asset) + "title-9000/" for c in issued), issued
    assert all(0 < c["max_age"] <= TOKEN_TTL_SECONDS for c in issued), issued
    # The browser sent exactly the cookies the gateway set, and changed them as they were re-issued.
    sent = {r["cookie_ids"][name] for r in requests}
    assert sent <= {c["id"] for c in issued}, "a cookie nobody set was sent"
    last_sent_ms = max(float(r["at_ms"]) for r in requests)
    expired = [c for c in issued if c["at_ms"] + c["max_age"] * 1000 < last_sent_ms]
    assert len(sent) >= MIN_EXPIRIES and len(expired) >= MIN_EXPIRIES, (len(sent), len(expired))
    report(
        record_property,
        cookies_set_by_api=len(issued) - len(reissued),
        cookies_reissued_on_media_responses=len(reissued),
        distinct_cookies_sent=len(sent),
        cookie_expiries_crossed=len(expired),
        http_403=0,
        longest_stall_s=round(longest_stall_seconds(result["watch"]["samples"]), 2),
    )


def assert_stopped_with(result: dict[str, Any], *, reason: str, session_reason: str) -> float:
    """Played cleanly up to the first refusal, then stopped with `reason` on screen; returns the stop time."""
    summary = {k: result.get(k) for k in ("outcome", "error", "denial", "screen", "elapsed_ms")}
    assert result["outcome"] == "stopped" and result["watch"]["ended"] == "stopped", summary
    denials = result["T"]["denials"]
    assert denials and {d["reason"] for d in denials} == {reason}, denials
    stop_at_ms = epoch_ms(denials[0]["at"])
    # Before the stop: a clean live playback, no stall. After it: only this refusal.
    assert {(r["status"], r["denial"]) for r in result["bad_responses"]} == {(403, reason)}, result["bad_responses"]
    assert unexpected_errors(result, stop_at_ms) == [], f"hls.js ERROR events: {unexpected_errors(result, stop_at_ms)}"
    stall = longest_stall_seconds(result["watch"]["samples"], until_ms=stop_at_ms)
    assert stall <= MAX_STALL_SECONDS, f"media time stood still for {stall:.1f} s before the stop"
    # On screen: the gateway's refusal in the banner and the session marked over; the video stopped.
    screen = result["screen"]
    assert reason in screen["banner"] and "403" in screen["banner"], screen
    assert f"session over ({session_reason})" in screen["token_life"], screen
    assert screen["paused"], screen
    stopped = [e for e in result["T"]["events"] if e["type"] == "playback_stopped"]
    assert [e["reason"] for e in stopped] == [session_reason], stopped
    # No crash: the page answered every 250 ms sample for 3 s after the banner showed.
    assert result["page_errors"] == [] and result["error"] is None, (result["page_errors"], result["error"])
    tail = [s for s in result["watch"]["samples"] if s["at_ms"] >= result["watch"]["stop_seen_at_ms"]]
    assert len(tail) >= 8 and all(s["denial"] == reason for s in tail), tail
    return stop_at_ms


def test_playback_stops_at_the_sessions_maximum_life_with_the_reason_on_screen(
    node: str, short_life_demo: vod.Demo, record_property: vod.RecordProperty
) -> None:
    asset = live_asset(short_life_demo)
    result = play_live(node, short_life_demo, asset, SHORT_MAX_LIFE_SECONDS + 15, "--expect-stop")
    stop_at_ms = assert_stopped_with(result, reason="expired", session_reason="session_ended")
    session_ends = next(e for e in result["T"]["events"] if e["type"] == "session_started")["session_ends_at"]
    assert stop_at_ms / 1000 >= session_ends, "refused before the session's cap"
    first_refused = min(result["bad_responses"], key=lambda r: r["seq"])
    assert grant_of(first_refused).expires_at == session_ends, "refused for the session's cap, not a short token"
    report(
        record_property,
        max_life_s=SHORT_MAX_LIFE_SECONDS,
        stopped_s_after_cap=round(stop_at_ms / 1000 - session_ends, 1),
        media_played_s=round(result["watch"]["media_played_s"], 1),
        screen_banner=result["screen"]["banner"],
        screen_session=result["screen"]["token_life"],
        refusals_after_stop=len(result["bad_responses"]),
    )


def test_playback_stops_when_the_session_is_revoked_mid_play(
    node: str, live_demo: vod.Demo, record_property: vod.RecordProperty
) -> None:
    asset = live_asset(live_demo)
    result = play_live(node, live_demo, asset, 20, "--revoke-after-s", "5", "--expect-stop")
    revoke = result["revoke"]
    assert revoke and revoke["status"] == 204, revoke
    stop_at_ms = assert_stopped_with(result, reason="revoked", session_reason="revoked")
    assert stop_at_ms >= revoke["at_ms"]
    assert min(r["seq"] for r in result["bad_responses"]) > revoke["sent_before"]
    report(
        record_property,
        stopped_s_after_revoke=round((stop_at_ms - revoke["at_ms"]) / 1000, 1),
        screen_banner=result["screen"]["banner"],
        screen_session=result["screen"]["token_life"],
        refusals_after_stop=len(result["bad_responses"]),
    )
