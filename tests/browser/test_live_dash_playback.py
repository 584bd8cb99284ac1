"""Live DASH through the gateway in Debian's Chromium: dash.js and shaka-player, no token logic in the page.

The demo origin loops dash-9000 as live DASH (dynamic MPD, 2 s segments, minimumUpdatePeriod 2 s); the
demo gateway protects it with short tokens and no leeway. The page is `players/plain.html`: it plays the
session's `playback_url` as given, so what keeps the session going is the gateway alone:

- query mode with MPD patches (PatchLocation): every patch restates the SegmentTemplate, and the gateway
  writes freshly minted media tokens into it (6 to 9 s here); the first MPD's own URIs keep tokens that
  last the session, since a player may keep them (shaka re-fetches init sections with them);
- cookie mode with MPD patches: the player follows patch to patch and the gateway re-issues the cookie (4 s)
  on the responses before it expires;
- queryparam mode (the demo's `/queryparam/live/`, with `request_param = true`): the MPD, its patches and
  their refreshes carry no token and are the same bytes for every viewer; the player appends the MPD URL's
  query (the session token, which lasts the session) to every MPD reload, patch, init and segment request:
  dash.js from the `urlparam:2016` descriptor (`includeInRequests="segment xlink mpd mpdpatch"`), shaka
  from `RequestParam`. Without `RequestParam` shaka requests patches bare and is refused: pinned below;
- a CAT edge route (CTA-5007, `catr` header renewal, 6 s tokens renewed in their last 4 s): the player is
  given one CAT on the MPD URL and nothing else; the gateway answers with renewed tokens under both header
  names, and dash.js (`common-access-token`) and shaka (`cta-common-access-token`) send the newest one on
  their next requests.

Each case watches 44 s of live playback and fails on any player error event, any HTTP status >= 400 seen
by the browser, a stall, or fewer than 10 media tokens (cookies) expired while playback went on (in
queryparam mode: the one session token rode on the player for as long as 10 of the other modes' 4 s
session tokens would have lived). The watches run PARALLEL_WATCHES at a time (each its own Chromium).
Needs node, npm and
/usr/bin/chromium: missing ones skip locally and fail in CI (CI=true).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from gateway.config import Route, Settings
from gateway.dev.demo import build_demo_origin, demo_page_routes, demo_routes, demo_settings
from gateway.http.app import build_app
from gateway.tokens.dialects import load_dialect
from gateway.tokens.dialects.cat import CatDialect
from gateway.tokens.grant import Grant
from gateway.tokens.keys import HmacKey, KeyRing
from gateway.tokens.native import inspect_token
from tests.browser import test_demo_playback as vod
from tests.browser import test_query_param_playback as query_param
from tests.support.servers import serve_app

pytestmark = pytest.mark.browser

node = vod.node  # the session fixture: node, npm, chromium, `npm ci`

WATCH = vod.PLAYERS / "tests" / "watch_live.mjs"
MEDIA_TTL_SECONDS = 6  # media tokens in a reloaded MPD live 6..9 s (now + TTL, rounded up to a 3 s bucket)
TOKEN_TTL_SECONDS = 4  # the session token, and the cookie in cookie mode (re-issued at half its life)
WATCH_SECONDS = 44
MIN_EXPIRIES = 10
MAX_STALL_SECONDS = 2.0
ASSET = "/live/dash-9000/manifest.mpd"
PARALLEL_WATCHES = 1  # 2 halves the wall time, but with 4 s cookies a busy CI machine made stalls expire them
CAT_PLAYERS = ("dashjs", "shaka")
CASES = {
    "dashjs-query-patches": ("dashjs", "query"),
    "shaka-query-patches": ("shaka", "query"),
    "dashjs-cookie-patches": ("dashjs", "cookie"),
    "shaka-cookie-patches": ("shaka", "cookie"),
    "dashjs-queryparam-patches": ("dashjs", "queryparam"),
    "shaka-queryparam-patches": ("shaka", "queryparam"),
}
MOUNTS = {"query": "/live/", "cookie": "/cookie/live/", "queryparam": "/queryparam/live/"}


@contextlib.contextmanager
def running(state_dir: Path, *, request_param: bool = True) -> Iterator[str]:
    """The demo gateway (short tokens, no leeway) in front of the live origin with MPD patches; with
    `request_param` False its queryparam routes leave `RequestParam` out (the descriptors only)."""
    origin = build_demo_origin(dash_patch_ttl_seconds=60)
    with serve_app(origin) as origin_url:
        settings = demo_settings(
            state_dir,
            f"{origin_url}/",
            leeway_seconds=0,
            media_ttl_seconds=MEDIA_TTL_SECONDS,
            token_ttl_seconds=TOKEN_TTL_SECONDS,
            max_life_seconds=600,
        )
        routes = tuple(
            dataclasses.replace(route, request_param=request_param and route.request_param) for route in settings.routes
        )
        gateway = build_app(dataclasses.replace(settings, routes=routes), extra_routes=demo_routes())
        with serve_app(gateway) as gateway_url:
            yield gateway_url


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One demo gateway in front of the live origin with MPD patches: query, cookie and queryparam mounts."""
    with running(tmp_path_factory.mktemp("dash-live-patches")) as patched:
        yield dict.fromkeys(MOUNTS, patched)


def watch(node: str, url: str, asset: str | None = None, *, watch_s: float = WATCH_SECONDS) -> dict[str, Any]:
    """watch_live.mjs on `url`; with `asset` the page starts that session itself (so a cookie lands in the browser)."""
    timeout_ms = 30_000
    command = [node, str(WATCH), "--url", url, "--watch-s", str(watch_s), "--timeout-ms", str(timeout_ms)]
    if asset is not None:
        command += ["--session-asset", asset, "--user", vod.PAID_USER]
    done = subprocess.run(
        command,
        cwd=vod.PLAYERS,
        capture_output=True,
        text=True,
        timeout=watch_s + timeout_ms / 1000 + 20,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"watch_live.mjs exited {done.returncode}\n{done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def path_of(url: str) -> str:
    return urlsplit(url).path


def assert_played(case_id: str, result: dict[str, Any]) -> None:
    """Nothing refused, no player error, and playback went on with no stall over MAX_STALL_SECONDS."""
    summary = {k: result.get(k) for k in ("outcome", "error", "elapsed_ms", "T")}
    bad = [(r["status"], r["denial"], path_of(r["url"])) for r in result["bad_responses"]]
    assert bad == [], f"{case_id}: {bad}\n{summary}"
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [] and result["page_errors"] == [], (failed, result["page_errors"])
    assert result["outcome"] == "watched" and (result["T"] or {}).get("errors") == [], summary
    samples = result["samples"]
    assert samples[-1]["ct"] - samples[0]["ct"] >= WATCH_SECONDS - 2 * MAX_STALL_SECONDS, (samples[0], samples[-1])
    stalls, since = 0.0, samples[0]
    for sample in samples[1:]:
        if sample["ct"] > since["ct"]:
            since = sample
        stalls = max(stalls, (sample["at_ms"] - since["at_ms"]) / 1000)
    assert stalls <= MAX_STALL_SECONDS, f"media time stood still {stalls:.1f} s"


def watch_case(node: str, gateways: dict[str, str], case_id: str) -> dict[str, Any]:
    player, mode = CASES[case_id]
    asset = MOUNTS[mode] + ASSET.removeprefix("/live/")
    return watch(node, f"{gateways[mode]}/players/plain.html?{urlencode({'player': player})}", asset)


def watch_cat(node: str, cat_gateway: tuple[str, CatDialect], player: str) -> dict[str, Any]:
    gateway, dialect = cat_gateway
    now = int(time.time())
    # The first CAT has room for a slow start-up (it is due after 6 s); each renewal lives CAT_EXPADD_SECONDS.
    first = dialect.issue(Grant(("/live/dash-9000/",), now + 10), issued_at=now)
    src = f"{gateway}{ASSET}?cat={first}"
    return watch(node, f"{gateway}/players/plain.html?{urlencode({'player': player, 'src': src})}")


@pytest.fixture(scope="module")
def watched(
    node: str, gateways: dict[str, str], cat_gateway: tuple[str, CatDialect]
) -> dict[str, dict[str, Any] | Exception]:
    """Every live watch of this module, PARALLEL_WATCHES at a time: each is 44 s of wall time spent mostly
    waiting for the live edge (side by side, one Chromium each, they would cost the suite less)."""
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        case_id: functools.partial(watch_case, node, gateways, case_id) for case_id in CASES
    }
    jobs |= {f"{player}-cat": functools.partial(watch_cat, node, cat_gateway, player) for player in CAT_PLAYERS}
    with concurrent.futures.ThreadPoolExecutor(PARALLEL_WATCHES) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
    results: dict[str, dict[str, Any] | Exception] = {}
    for name, future in futures.items():
        error = future.exception()
        results[name] = error if isinstance(error, Exception) else future.result()
    return results


def watch_result(watched: dict[str, dict[str, Any] | Exception], name: str) -> dict[str, Any]:
    result = watched[name]
    if isinstance(result, Exception):
        raise result
    return result


@pytest.mark.parametrize("case_id", list(CASES))
def test_live_dash_plays_through_many_token_expiries(
    watched: dict[str, dict[str, Any] | Exception], case_id: str, record_property: vod.RecordProperty
) -> None:
    mode = CASES[case_id][1]
    mount = MOUNTS[mode]
    result = watch_result(watched, case_id)
    record_property("wall_ms", result["elapsed_ms"])

    # 1. Nothing refused, no player error, and it kept playing.
    assert_played(case_id, result)

    # 2. The session outlived at least MIN_EXPIRIES short credentials, each used and replaced.
    ours = [r for r in result["requests"] if path_of(r["url"]).startswith(mount + "dash-9000/")]
    manifests = [r for r in ours if path_of(r["url"]).endswith((".mpd", ".mpp"))]
    media = [r for r in ours if path_of(r["url"]).endswith((".m4s", ".mp4"))]
    assert len(manifests) >= WATCH_SECONDS / 2 - 2 and len(media) >= WATCH_SECONDS, (len(manifests), len(media))
    assert any(path_of(r["url"]).endswith(".mpp") for r in manifests), "the player used MPD patches"
    assert all(r["headers"]["content-type"] == "application/dash-patch+xml" for r in manifests if ".mpp" in r["url"])
    end = max(r["response_ms"] for r in ours) / 1000
    if mode == "query":
        tokens = {vod.token_of(r["url"]) for r in media}
        assert None not in tokens, "query mode: a token on every segment and init request"
        expired = sorted(t for t in tokens if t and inspect_token(t).expires_at < end)
    elif mode == "queryparam":
        # One token, the session's, on every request: the player appended the MPD URL's query to every MPD
        # reload (Location), patch (PatchLocation), init and segment request.
        tokens = {vod.token_of(r["url"]) for r in ours}
        assert len(tokens) == 1 and None not in tokens, f"queryparam: {len(tokens)} tokens (None: a bare URL)"
        grant = inspect_token(tokens.pop() or "")
        assert grant.expires_at == grant.session_ends_at, "queryparam: the session token lasts the session"
        assert sum(path_of(r["url"]).endswith(".mpp") for r in manifests) >= WATCH_SECONDS / 2 - 4, "patch to patch"
        # No short credential here: count the 4 s session tokens (as the other modes issue) it outlived.
        start = min(r["at_ms"] for r in ours) / 1000
        expired = [
            f"{start + k * TOKEN_TTL_SECONDS:.0f}" for k in range(1, int((end - start) // TOKEN_TTL_SECONDS) + 1)
        ]
    else:
        assert all("token=" not in r["url"] for r in media), "cookie mode: no token in any URL"
        # every cookie the gateway (re-)issued that expired while playback went on
        expired = sorted(str(r["seq"]) for r in ours if r["cookie_expires_s"] and r["cookie_expires_s"] < end)
    record_property("expired_credentials", len(expired))
    assert len(expired) >= MIN_EXPIRIES, f"only {len(expired)} credentials expired during playback"
    print(
        f"{case_id}: {len(manifests)} manifest and {len(media)} media requests, {len(expired)} expiries lived through"
    )


PUBLISH_TIME = re.compile(rb'publishTime="([^"]+)"')
PATCH_LOCATION = re.compile(rb"<PatchLocation[^>]*>([^<]+)</PatchLocation>")


def fetched_together(urls: list[str]) -> list[httpx.Response]:
    """`urls` fetched back to back until all the answers are of one origin version (one `publishTime`): the
    live MPD changes every instant it is rendered, so answers that straddle a refresh of the gateway's copy
    differ for that reason alone."""
    for _ in range(5):
        answers = [httpx.get(url, timeout=10) for url in urls]
        assert all(a.status_code == 200 for a in answers), [(a.status_code, a.text[:200]) for a in answers]
        if len({PUBLISH_TIME.search(a.content).group(1) for a in answers}) == 1:  # type: ignore[union-attr]
            return answers
    raise AssertionError("five tries and never two answers of one publishTime")


def test_live_queryparam_mpd_and_patches_are_the_same_bytes_for_every_viewer(gateways: dict[str, str]) -> None:
    """Two sessions fetching the live MPD (and then its patch) at the same moment get identical bytes: no
    token in them, `Cache-Control: public`, and the descriptors that tell the player to hand its query on."""
    gateway = gateways["queryparam"]
    asset = MOUNTS["queryparam"] + ASSET.removeprefix("/live/")
    sessions = [query_param.start_session(vod.Demo(gateway, {}), asset) for _ in range(2)]
    assert sessions[0]["token"] != sessions[1]["token"]
    mpds = fetched_together([gateway + s["playback_url"] for s in sessions])
    assert mpds[0].content == mpds[1].content
    for session, mpd in zip(sessions, mpds, strict=True):
        assert session["token"].encode() not in mpd.content and b"token=" not in mpd.content
        assert mpd.headers["cache-control"].startswith("public, ")
    assert b'includeInRequests="segment xlink mpd mpdpatch"' in mpds[0].content
    assert mpds[0].content.count(b"<RequestParam ") == 1  # the demo's live queryparam route sets request_param
    assert b"<Location>manifest.mpd</Location>" in mpds[0].content  # bare: the player adds its query

    patch = PATCH_LOCATION.search(mpds[0].content)
    assert patch is not None
    time.sleep(2.5)  # a newer MPD exists: the patch has something to say
    base = f"{gateway}{asset.rsplit('/', 1)[0]}/{patch.group(1).decode()}"
    patches = fetched_together([f"{base}?token={s['token']}" for s in sessions])
    assert patches[0].content == patches[1].content and b"token=" not in patches[0].content
    assert patches[0].headers["content-type"] == "application/dash-patch+xml"
    assert patches[0].headers["cache-control"].startswith("public, ")
    assert httpx.get(base, timeout=10).status_code == 401  # the token is still checked on every request


@pytest.fixture(scope="module")
def descriptors_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo gateway with no `RequestParam` on its queryparam routes: the Annex I descriptors alone."""
    with running(tmp_path_factory.mktemp("dash-live-descriptors"), request_param=False) as gateway:
        yield gateway


PINNED_WATCH_SECONDS = 8


def test_shaka_live_queryparam_needs_request_param_for_patches(
    node: str, descriptors_only: str, record_property: vod.RecordProperty
) -> None:
    """Pins shaka-player 5.2's behaviour (README, player table): it appends the MPD URL's query to segment
    requests from the urlparam:2014/2016 descriptors, but to MPD and patch requests only from a
    `RequestParam` (`findRequestParamFn_(mpd, 'mpdpatch')` in lib/dash/dash_parser.js), whatever the
    descriptor's `includeInRequests` says. So without one every patch request goes out bare and is refused.
    If this starts to fail, shaka has changed: update the README table (and drop the demo's need for it)."""
    asset = MOUNTS["queryparam"] + ASSET.removeprefix("/live/")
    page = f"{descriptors_only}/players/plain.html?{urlencode({'player': 'shaka'})}"
    result = watch(node, page, asset, watch_s=PINNED_WATCH_SECONDS)
    record_property("wall_ms", result["elapsed_ms"])
    ours = [r for r in result["requests"] if path_of(r["url"]).startswith(MOUNTS["queryparam"] + "dash-9000/")]
    media = [r for r in ours if path_of(r["url"]).endswith((".m4s", ".mp4"))]
    assert media and all(vod.token_of(r["url"]) for r in media), "segments carry the MPD URL's query"
    refused = [
        (r["status"], r["denial"], path_of(r["url"])[-4:], vod.token_of(r["url"])) for r in result["bad_responses"]
    ]
    assert refused and set(refused) == {(401, "missing", ".mpp", None)}, refused
    errors = (result["T"] or {}).get("errors") or []
    assert errors and {e["code"] for e in errors} == {1001}, errors  # shaka's BAD_HTTP_STATUS


CAT_SECRET = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388"
CAT_EXPADD_SECONDS = 6
CAT_DEADLINE_SECONDS = 4  # renewed once a token has 4 s left: about every 2 s, on the next MPD reload


@pytest.fixture(scope="module")
def cat_gateway() -> Iterator[tuple[str, CatDialect]]:
    """The demo origin (live DASH, no patches) behind a gateway whose /live/ route is a CAT edge."""
    table = {
        "issuer": "gateway.example",
        "keys": [{"kid": "Symmetric256", "secret": CAT_SECRET}],
        "renewal": {"type": "header", "expadd_seconds": CAT_EXPADD_SECONDS, "deadline_seconds": CAT_DEADLINE_SECONDS},
    }
    dialect = load_dialect("cat", table)
    assert isinstance(dialect, CatDialect)
    with serve_app(build_demo_origin(dash_patch_ttl_seconds=None)) as origin_url:
        settings = Settings(
            keys=KeyRing((HmacKey("k1", b"\x01" * 32),)),
            routes=(Route(mount="/live/", origin=f"{origin_url}/live/", edge="cat"),),
            dialects={"cat": dialect},
            leeway_seconds=0,
        )
        with serve_app(build_app(settings, extra_routes=demo_page_routes())) as gateway_url:
            yield gateway_url, dialect


@pytest.mark.parametrize("player", CAT_PLAYERS)
def test_live_dash_plays_on_cat_header_renewal(
    watched: dict[str, dict[str, Any] | Exception], player: str, record_property: vod.RecordProperty
) -> None:
    result = watch_result(watched, f"{player}-cat")
    record_property("wall_ms", result["elapsed_ms"])
    assert_played(f"{player}-cat", result)

    ours = [r for r in result["requests"] if path_of(r["url"]).startswith("/live/dash-9000/")]
    renewed = {r["cat_renewed"]: r["response_ms"] / 1000 for r in ours if r["cat_renewed"]}
    sent = {r["cat_sent"] for r in ours if r["cat_sent"]}
    end = max(r["response_ms"] for r in ours) / 1000
    expired = [fp for fp, at in renewed.items() if at + CAT_EXPADD_SECONDS < end]
    # The player read the renewals from the response headers and sent them back as a request header.
    # (on a busy machine a player may skip a renewal that a newer one replaced within the same request burst)
    assert len(sent & set(renewed)) >= 0.8 * len(renewed), (len(sent), len(renewed))
    assert len(expired) >= MIN_EXPIRIES, f"only {len(expired)} renewed CATs expired during playback"
    print(f"{player}-cat: {len(ours)} requests, {len(renewed)} renewals, {len(sent)} tokens sent in headers")
