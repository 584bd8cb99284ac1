"""VOD played by a player that refreshes nothing never meets `403 expired` (Debian's Chromium).

shaka-player, dash.js, Safari, ffmpeg and hls.js without the demo page's renewal (`?renew=off`) load a
VOD media playlist or a static MPD once and never ask for another token. The media tokens the gateway
writes into such a manifest are all they will ever have, so they must outlive playback, seeks included:
a short rolling media token there (right for live, where every reload brings a fresh one) gave these
players `403 expired` on segments once `media_ttl_seconds` had passed since the manifest was served.

Each case plays a query-mode VOD session through the demo gateway (media TTL 2 s, leeway 0, so an expiry
bites at once) with no token logic in the page: to the end at 2x, then, once every rolling media token
the manifests could have carried is dead, seeks back to the start and plays 3 s more. Small buffers (4 s
ahead, the least the player allows behind) spread segment fetches over the title and make the seek back
fetch again; the browser's HTTP cache is off (a cached segment would hide a refusal). HTTP statuses are
watched from the browser (`page.on('response')`), not from the players: they hide refusals behind
retries and rendition switches.

Cases: shaka on the HLS title (title-9000, AES-128 TS, alternate audio) and on the DASH title
(dash-9000, static MPD); dash.js on the DASH title (both on `players/plain.html`); hls.js on the demo
page with `renew=off`. Needs node, npm and /usr/bin/chromium: missing ones skip locally and fail in CI.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from gateway.dev.demo import VENDOR_FILES
from tests.browser import test_demo_playback as vod

pytestmark = pytest.mark.browser

# The session-scoped fixture of the VOD browser tests: node, npm and chromium present (required in CI),
# `npm ci` done. Assigned here so pytest finds it in this module too.
node = vod.node

SEEK_BACK = vod.PLAYERS / "tests" / "seek_back.mjs"
MEDIA_TTL_SECONDS = 2
# The longest life a rolling media token gets: now + TTL rounded up to a bucket of TTL/2 (at least 1 s).
ROLLING_LIFE_SECONDS = MEDIA_TTL_SECONDS + max(1, MEDIA_TTL_SECONDS // 2)
TOKEN_TTL_SECONDS = 10  # the session token on the master/MPD URL: only the first load uses it
RATE = 2  # 12 s and 16 s titles play in 6 s and 8 s of wall time: 2 to 3 rolling lives
BUFFER_SECONDS = 4
AFTER_SEEK_SECONDS = 3  # media seconds to play after the seek back
STALE_MS = (ROLLING_LIFE_SECONDS + 1) * 1000  # seek back no sooner after the last manifest response
DRIVER_TIMEOUT_SECONDS = 45
MANIFEST_SUFFIXES = (".m3u8", ".mpd")


@dataclass(frozen=True)
class Case:
    player: str  # plain.html's `player=`, or "demo" for the hls.js demo page with renew=off
    format: str  # the catalog's title format: "hls" or "dash"

    @property
    def first_segment(self) -> str:
        """The file name of the title's first media segment (each rendition has one)."""
        return "seg_000.ts" if self.format == "hls" else "seg-00001.m4s"


CASES = {
    "shaka-hls": Case("shaka", "hls"),
    "shaka-dash": Case("shaka", "dash"),
    "dashjs-dash": Case("dashjs", "dash"),
    "hlsjs-demo-renew-off": Case("demo", "hls"),
}


@pytest.fixture(scope="session")
def players(node: str) -> str:
    """node, with the vendor players the demo serves installed (an older node_modules may lack some)."""
    if not all(path.exists() for path in VENDOR_FILES.values()):
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=vod.PLAYERS,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed in {vod.PLAYERS}:\n{done.stderr[-2000:]}"
    return node


@contextlib.contextmanager
def running_short_ttl_demo(state_dir: Path) -> Iterator[vod.Demo]:
    """The demo origin and gateway under real uvicorns, with a 2 s media TTL and no leeway."""
    with vod.running_demo(
        state_dir,
        leeway_seconds=0,
        media_ttl_seconds=MEDIA_TTL_SECONDS,
        token_ttl_seconds=TOKEN_TTL_SECONDS,
    ) as demo:
        yield demo


@pytest.fixture(scope="module")
def short_ttl_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    with running_short_ttl_demo(tmp_path_factory.mktemp("vod-no-refresh")) as demo:
        yield demo


def premium_asset(demo: vod.Demo, fmt: str) -> str:
    """The paid VOD title of that format, as the catalog lists it (query mode)."""
    return next(
        str(t["asset"]) for t in demo.catalog["titles"] if t["paid"] and not t["live"] and t.get("format") == fmt
    )


def page_url(demo: vod.Demo, case: Case, asset: str) -> str:
    knobs = {"rate": str(RATE), "buffer": str(BUFFER_SECONDS)}
    if case.player == "demo":  # the page starts the session itself; renew=off: URLs as the playlists give them
        query = {"user": vod.PAID_USER, "asset": asset, "autostart": "1", "renew": "off", **knobs}
        return f"{demo.url}/?{urlencode(query)}"
    started = httpx.post(
        f"{demo.url}/api/sessions",
        json={"asset": asset},
        headers={"authorization": f"Bearer {vod.PAID_USER}"},
        timeout=10,
    )
    assert started.status_code == 201, started.text
    assert started.json()["mode"] == "query"
    src = started.json()["playback_url"]
    return f"{demo.url}/players/plain.html?{urlencode({'player': case.player, 'src': src, **knobs})}"


def seek_back(
    node: str,
    url: str,
    *,
    stale_ms: int = STALE_MS,
    after_seek_s: float = AFTER_SEEK_SECONDS,
    timeout_s: int = DRIVER_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Run seek_back.mjs on `url` and return its JSON result; a crash or a non-JSON answer fails with its stderr."""
    command = [node, str(SEEK_BACK), "--url", url, "--stale-ms", str(stale_ms)]
    command += ["--after-seek-s", str(after_seek_s), "--timeout-ms", str(timeout_s * 1000)]
    done = subprocess.run(command, cwd=vod.PLAYERS, capture_output=True, text=True, timeout=timeout_s + 20, check=False)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (
        f"seek_back.mjs exited {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def path_of(url: str) -> str:
    return urlsplit(url).path


def media_requests(result: dict[str, Any], title_prefix: str) -> list[dict[str, Any]]:
    """Segment, init and key requests of the title (not manifests), in the order they were sent."""
    found = [
        r
        for r in result["requests"]
        if path_of(r["url"]).startswith(title_prefix) and not path_of(r["url"]).endswith(MANIFEST_SUFFIXES)
    ]
    return sorted(found, key=lambda r: int(r["seq"]))


def manifests_served_before(result: dict[str, Any], request: dict[str, Any]) -> list[float]:
    """When each manifest response arrived, of those that arrived before `request` was sent (epoch ms)."""
    return [
        float(r["response_ms"])
        for r in result["requests"]
        if path_of(r["url"]).endswith(MANIFEST_SUFFIXES) and float(r["response_ms"]) <= float(request["at_ms"])
    ]


def age_of_manifests_ms(result: dict[str, Any], request: dict[str, Any]) -> float:
    """How long before `request` was sent the newest manifest had been served (the youngest token it could carry)."""
    served = manifests_served_before(result, request)
    assert served, f"{request['url']} was requested before any manifest arrived"
    return float(request["at_ms"]) - max(served)


def describe_refusal(result: dict[str, Any], request: dict[str, Any]) -> str:
    served = manifests_served_before(result, request)
    when = f"{request['at_ms'] - max(served):.0f} ms after the last manifest" if served else "before any manifest"
    return f"{request['status']} {request['denial']} {path_of(request['url'])}, sent {when}"


def unexpected_player_errors(case: Case, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every error event the player reported, but hls.js's known benign pair near media time 0 (at startup,
    and again right after the seek back to 0; see test_demo_playback.py)."""
    errors: list[dict[str, Any]] = list((result["T"] or {}).get("errors", []))
    if case.player != "demo":
        return errors
    return [
        e
        for e in errors
        if not (
            e.get("details") in vod.STARTUP_BENIGN
            and not e.get("fatal")
            and float(e.get("media_time") or 0) <= vod.STARTUP_MEDIA_SECONDS
        )
    ]


@pytest.mark.parametrize("case_id", list(CASES))
def test_vod_plays_to_the_end_and_seeks_back_with_no_refresh(
    players: str, short_ttl_demo: vod.Demo, case_id: str, record_property: vod.RecordProperty
) -> None:
    case = CASES[case_id]
    asset = premium_asset(short_ttl_demo, case.format)
    title_prefix = asset.rsplit("/", 1)[0] + "/"
    result = seek_back(players, page_url(short_ttl_demo, case, asset))
    summary = {k: result.get(k) for k in ("outcome", "phase", "error", "end", "seek", "final", "elapsed_ms")}
    record_property("wall_ms", result["elapsed_ms"])

    # 1. No refusal, whatever the player made of it: this is the bug (403 expired on segments).
    refused = [describe_refusal(result, r) for r in result["bad_responses"]]
    assert refused == [], f"{case_id}: refused requests:\n" + "\n".join(refused) + f"\n{summary}"
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [] and result["page_errors"] == [], (failed, result["page_errors"])
    assert unexpected_player_errors(case, result) == [], summary
    assert result["outcome"] == "played", summary

    # 2. It played to the end, went back, and played on from the start.
    end, final = result["end"], result["final"]
    assert end["ended"] or end["currentTime"] >= end["duration"] - 1, end
    assert end["duration"] >= 12 - 0.5, end  # the whole title, not a part of it
    assert AFTER_SEEK_SECONDS < final["currentTime"] < end["currentTime"] - 1 and not final["paused"], final

    # 3. The test exercised the bug: segments were fetched when no rolling media token could still live,
    #    and the seek back really fetched the start of the title again (small buffers, HTTP cache off).
    media = media_requests(result, title_prefix)
    assert media and all(vod.token_of(r["url"]) for r in media), "query mode: a token on every media request"
    stale = [r for r in media if age_of_manifests_ms(result, r) > ROLLING_LIFE_SECONDS * 1000]
    after_seek = [r for r in stale if r["seq"] > result["seek"]["sent_before"]]
    assert result["seek"]["since_last_manifest_ms"] >= STALE_MS, result["seek"]
    refetched_start = [r for r in after_seek if path_of(r["url"]).endswith(case.first_segment)]
    assert len(after_seek) >= 2 and refetched_start, [path_of(r["url"]) for r in after_seek]

    # 4. Nothing refreshed anything: no session or refresh API call from a plain page, none with renew=off.
    api = [path_of(r["url"]) for r in result["requests"] if path_of(r["url"]).startswith("/api/sessions")]
    assert api == ([] if case.player != "demo" else ["/api/sessions"]), api
    record_property("stale_media_requests", len(stale))
    print(
        f"{case_id}: {len(media)} media requests, {len(stale)} sent > {ROLLING_LIFE_SECONDS} s after the last "
        f"manifest, {len(after_seek)} after the seek back ({result['seek']['since_last_manifest_ms']} ms after it), "
        f"wall {result['elapsed_ms']} ms"
    )
