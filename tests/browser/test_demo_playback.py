"""The demo page plays through the real gateway in Debian's Chromium (playwright-core, no downloaded browser).

Both demo apps (the gateway and its origin) run under a real uvicorn on 127.0.0.1; `players/tests/play.mjs`
drives `/usr/bin/chromium` against the page the gateway serves and prints one JSON line that these tests
assert on: media time reached, every hls.js ERROR event, every HTTP status >= 400, and the URL and Cookie
header of every request.

Needs node, npm and /usr/bin/chromium: missing ones skip the tests locally and fail them in CI (CI=true).
`players/node_modules` is installed with `npm ci` when it is missing.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.dev.demo import build_demo, build_demo_origin
from tests.support.servers import serve_app
from tests.support.tools import require_file, require_tool

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
PLAYERS = REPO / "players"
PLAY = PLAYERS / "tests" / "play.mjs"
CHROMIUM = Path("/usr/bin/chromium")
PAID_USER = "demo-paid"
PLAY_TIMEOUT_SECONDS = 60
# hls.js 1.7.4 raises these two *non-fatal* events while starting ffmpeg-made MPEG-TS (a known false
# positive: a new hls.js check, hls.js PRs #7941 and #7979). Anything else, fatal or not, fails a playback test.
STARTUP_BENIGN = frozenset({"bufferAppendNoProgress", "bufferSeekOverHole"})
STARTUP_MEDIA_SECONDS = 2.0  # "at startup": before the end of the first 2 s segment
SHORT_TTL_SECONDS = 3
GATEWAY_LEEWAY_SECONDS = 5  # Settings.leeway_seconds default: an expired token is refused this much later


@pytest.fixture(scope="session")
def node() -> str:
    found = {name: require_tool(name) for name in ("node", "npm")}
    require_file(CHROMIUM, "Debian's chromium package; scripts/setup.sh --system installs it")
    if (
        not (PLAYERS / "node_modules" / "hls.js" / "dist" / "hls.min.js").exists()
        or not (PLAYERS / "node_modules" / "playwright-core").exists()
    ):
        done = subprocess.run(
            [str(found["npm"]), "ci", "--no-audit", "--no-fund"],
            cwd=PLAYERS,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed in {PLAYERS}:\n{done.stderr[-2000:]}"
    return str(found["node"])


@dataclass(frozen=True)
class Demo:
    url: str
    catalog: dict[str, Any]

    def mount(self, mode: str) -> str:
        return next(str(m["mount"]) for m in self.catalog["modes"] if m["name"] == mode)

    def asset(self, *, paid: bool, mode: str = "query") -> str:
        title = next(str(t["asset"]) for t in self.catalog["titles"] if bool(t["paid"]) is paid)
        query_mount = self.mount("query")
        assert title.startswith(query_mount), f"catalog title {title} is not under {query_mount}"
        return self.mount(mode) + title[len(query_mount) :]

    def user(self, plan: str) -> str:
        return next(str(u["credential"]) for u in self.catalog["users"] if u["plan"] == plan)


@contextlib.contextmanager
def running_demo(state_dir: Path, *, leeway_seconds: float = 5.0, **session_overrides: Any) -> Iterator[Demo]:
    """The demo origin and the demo gateway in front of it, each under a real uvicorn.

    `session_overrides` are `SessionSettings` fields (short TTLs for the renewal and no-refresh proofs).
    """
    with serve_app(build_demo_origin()) as origin_url:
        gateway = build_demo(state_dir, f"{origin_url}/", leeway_seconds=leeway_seconds, **session_overrides)
        with serve_app(gateway) as gateway_url:
            catalog = httpx.get(f"{gateway_url}/api/demo/catalog", timeout=10).json()
            yield Demo(gateway_url, catalog)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("demo-state")) as running:
        yield running


@pytest.fixture(scope="module")
def short_ttl_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Session tokens that live SHORT_TTL_SECONDS, so renewal happens within a test."""
    with running_demo(tmp_path_factory.mktemp("demo-state"), token_ttl_seconds=SHORT_TTL_SECONDS) as running:
        yield running


def play(node: str, demo: Demo, *args: str) -> dict[str, Any]:
    """Run play.mjs and return its JSON result; a crash or a non-JSON answer fails with its stderr."""
    command = [node, str(PLAY), "--gateway", demo.url, "--timeout-ms", "40000", *args]
    done = subprocess.run(
        command, cwd=PLAYERS, capture_output=True, text=True, timeout=PLAY_TIMEOUT_SECONDS, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (
        f"play.mjs exited {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def media_requests(result: dict[str, Any], mount: str) -> list[dict[str, Any]]:
    """Requests for playlists, keys and segments (not the page, its scripts or the APIs)."""
    found = [r for r in result["requests"] if urlsplit(r["url"]).path.startswith(mount)]
    assert found, f"no media requests under {mount}: {[r['url'] for r in result['requests']]}"
    return found


def token_of(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("token")
    return values[0] if values else None


RecordProperty = Callable[[str, object], None]


def assert_clean_playback(result: dict[str, Any], record_property: RecordProperty) -> None:
    """Played > 5 s, no HTTP >= 400, no failed request but aborts, no hls.js ERROR beyond the startup pair."""
    summary = {k: result.get(k) for k in ("outcome", "error", "currentTime", "denial", "elapsed_ms")}
    assert result["outcome"] == "played" and result["currentTime"] > 5, summary
    assert result["bad_responses"] == [], result["bad_responses"]
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [], failed
    assert result["page_errors"] == [], result["page_errors"]
    errors = result["T"]["errors"]
    tolerated = [
        e
        for e in errors
        if e["details"] in STARTUP_BENIGN and not e["fatal"] and (e.get("media_time") or 0) <= STARTUP_MEDIA_SECONDS
    ]
    unexpected = [e for e in errors if e not in tolerated]
    assert unexpected == [], f"hls.js ERROR events: {unexpected}"
    if tolerated:  # reported, not hidden
        names = sorted({e["details"] for e in tolerated})
        record_property("tolerated_hls_startup_errors", names)
        print(f"tolerated hls.js startup events: {names}")


def assert_expired_refreshed_and_retried(result: dict[str, Any]) -> None:
    """Only `403 expired` refusals, each shown, followed by one refresh and a retry with the new token."""
    refused = result["bad_responses"]
    assert refused and {(r["status"], r["denial"]) for r in refused} == {(403, "expired")}, refused
    assert {d["reason"] for d in result["T"]["denials"]} == {"expired"}
    triggers = [e["trigger"] for e in result["T"]["events"] if e["type"] == "refreshed"]
    assert triggers == ["expired_retry"], triggers
    for denied in refused:  # the next request for the same path is the retry: new token, and it succeeded
        path = urlsplit(denied["url"]).path
        retry = next(r for r in result["requests"] if urlsplit(r["url"]).path == path and r["seq"] > denied["seq"])
        assert retry["status"] == 200 and token_of(retry["url"]) != token_of(denied["url"]), retry


def test_paid_user_plays_in_query_mode_with_a_token_on_every_request(
    node: str, demo: Demo, record_property: RecordProperty, tmp_path: Path
) -> None:
    shot = tmp_path / "query.png"
    result = play(node, demo, "--user", PAID_USER, "--asset", demo.asset(paid=True), "--screenshot", str(shot))
    assert_clean_playback(result, record_property)
    assert result["T"]["session"]["mode"] == "query"
    assert result["T"]["events"][0]["type"] == "session_started"
    requests = media_requests(result, demo.mount("query"))
    untokenized = [r["url"] for r in requests if not token_of(r["url"])]
    assert untokenized == []
    # xhrSetup put the session's one current token on every request (no refresh is due in a 300 s life).
    assert len({token_of(r["url"]) for r in requests}) == 1
    assert {r["status"] for r in requests} == {200}
    # Playlists, the AES key and segments all went through the gateway.
    paths = [urlsplit(r["url"]).path for r in requests]
    assert all(any(p.endswith(ext) for p in paths) for ext in (".m3u8", ".key", ".ts")), paths
    assert shot.stat().st_size > 10_000


def test_paid_user_plays_in_cookie_mode_with_no_token_in_any_url(
    node: str, demo: Demo, record_property: RecordProperty
) -> None:
    result = play(node, demo, "--user", PAID_USER, "--asset", demo.asset(paid=True, mode="cookie"))
    assert_clean_playback(result, record_property)
    assert result["T"]["session"]["mode"] == "cookie"
    requests = media_requests(result, demo.mount("cookie"))
    assert [r["url"] for r in requests if "token" in urlsplit(r["url"]).query] == []
    assert [r["url"] for r in requests if not r.get("cookie")] == [], "every media request sends the cookie"
    assert result["cookies"], "the session API set a cookie"
    assert all(c["httpOnly"] for c in result["cookies"]), result["cookies"]


def test_free_user_asking_for_the_paid_title_sees_not_entitled(node: str, demo: Demo) -> None:
    result = play(node, demo, "--user", demo.user("free"), "--asset", demo.asset(paid=True), "--expect-denial")
    denial = result["denial"]
    assert result["outcome"] == "denied", result.get("error")
    assert denial["visible"] and denial["reason"] == "not_entitled", denial
    assert denial["status"] == "403" and denial["source"] == "session API", denial
    assert len(denial["detail"]) > 10 and " " in denial["detail"], "a human-readable detail"
    assert [d["reason"] for d in result["T"]["denials"]] == ["not_entitled"]
    assert result["T"]["frags"] == []


def test_switch_to_a_rendition_never_loaded_keeps_playing(
    node: str, demo: Demo, record_property: RecordProperty
) -> None:
    # The page starts pinned to level 0; the top level has never been requested when the switch happens.
    result = play(node, demo, "--user", PAID_USER, "--asset", demo.asset(paid=True), "--switch-level", "top")
    assert_clean_playback(result, record_property)
    top = result["switch"]["level"]
    assert top > 0 and result["switch"]["levels_loaded_before"] == [0], result["switch"]
    assert top in result["T"]["switched"]
    top_frags = {urlsplit(f["url"]).path for f in result["T"]["frags"] if f["level"] == top and f["type"] == "main"}
    assert top_frags, "segments of the new rendition were loaded"
    fetched = [r for r in media_requests(result, demo.mount("query")) if urlsplit(r["url"]).path in top_frags]
    assert fetched and all(r["status"] == 200 and token_of(r["url"]) for r in fetched)
    assert result["videoHeight"] == max(level["height"] for level in result["T"]["levels"])


def test_refreshed_token_is_used_by_every_later_request(node: str, demo: Demo, record_property: RecordProperty) -> None:
    # Refresh mid-playback, then switch to a rendition never loaded: its playlist and segments are new
    # requests, and xhrSetup must put the *new* token on each of them.
    result = play(
        node,
        demo,
        *("--user", PAID_USER, "--asset", demo.asset(paid=True)),
        *("--refresh-after-s", "1", "--switch-level", "top", "--rate", "2"),
    )
    assert_clean_playback(result, record_property)
    refresh = result["refresh"]
    refreshed = [e for e in result["T"]["events"] if e["type"] == "refreshed"]
    assert refreshed and refreshed[0]["trigger"] == "manual", refreshed
    if refresh["new_token"] == refresh["old_token"]:  # legal when the gateway buckets expiries
        record_property("refresh_returned_same_token", True)
    later = [r for r in media_requests(result, demo.mount("query")) if r["seq"] > refresh["sent_before_new_token"]]
    assert later, "the switch made new media requests after the refresh"
    assert {token_of(r["url"]) for r in later} == {refresh["new_token"]}


@pytest.mark.parametrize("mode", ["hybrid", "path", "queryparam"])
def test_paid_user_plays_in_the_other_delivery_modes(
    node: str, demo: Demo, record_property: RecordProperty, mode: str
) -> None:
    result = play(node, demo, "--user", PAID_USER, "--asset", demo.asset(paid=True, mode=mode), "--switch-level", "top")
    assert_clean_playback(result, record_property)
    assert result["T"]["session"]["mode"] == mode
    if mode == "path":  # /t/<token>/pathmode/vod/…: every media request carries the token in its path
        requests = [r for r in result["requests"] if urlsplit(r["url"]).path.startswith("/t/")]
        assert len(requests) > 5 and all(demo.mount("path") in r["url"] for r in requests)
        assert {r["status"] for r in requests} == {200}
    elif mode == "queryparam":  # hls.js hands the master's token on through `{$token}` in every URI
        requests = media_requests(result, demo.mount(mode))
        assert len(requests) > 5 and {r["status"] for r in requests} == {200}
        assert len({token_of(r["url"]) for r in requests}) == 1 and token_of(requests[0]["url"])
    else:  # the signed master URL bootstraps the cookie; everything after it is token-free
        requests = media_requests(result, demo.mount(mode))
        assert {r["status"] for r in requests} == {200}
        assert token_of(requests[0]["url"]) and urlsplit(requests[0]["url"]).path.endswith("master.m3u8")
        assert [r["url"] for r in requests[1:] if "token" in urlsplit(r["url"]).query] == []
        assert all(r.get("cookie") for r in requests[1:])


def test_token_is_renewed_ahead_of_expiry_during_a_pause(
    node: str, short_ttl_demo: Demo, record_property: RecordProperty
) -> None:
    # 3 s tokens, refreshed at 75 % of their life: a 4 s pause spans at least one scheduled refresh; the
    # switch after it loads a rendition never seen, every request with the renewed token.
    result = play(
        node,
        short_ttl_demo,
        *("--user", PAID_USER, "--asset", short_ttl_demo.asset(paid=True)),
        *("--idle-s", "4", "--switch-level", "top", "--rate", "1"),
    )
    assert_clean_playback(result, record_property)
    assert result["T"]["denials"] == []
    triggers = [e["trigger"] for e in result["T"]["events"] if e["type"] == "refreshed"]
    assert "scheduled" in triggers, triggers
    requests = media_requests(result, short_ttl_demo.mount("query"))
    first_token = token_of(requests[0]["url"])
    after_pause = [r for r in requests if r["seq"] > result["idle"]["sent_before_resume"]]
    assert after_pause, "the switch made new media requests after the pause"
    assert all(token_of(r["url"]) not in (None, first_token) for r in after_pause)


def test_expired_token_is_refreshed_once_and_the_request_retried(node: str, short_ttl_demo: Demo) -> None:
    # `renew=reactive` turns off renewal ahead of expiry, so after a pause longer than the token's life
    # (plus the gateway's leeway) the next request is refused as `expired`: the page must refresh, and
    # hls.js retry that request once, with the new token.
    idle = SHORT_TTL_SECONDS + GATEWAY_LEEWAY_SECONDS + 2
    result = play(
        node,
        short_ttl_demo,
        *("--user", PAID_USER, "--asset", short_ttl_demo.asset(paid=True)),
        *("--renew", "reactive", "--idle-s", str(idle), "--switch-level", "top", "--rate", "1"),
        *("--timeout-ms", str((idle + 25) * 1000)),
    )
    assert_expired_refreshed_and_retried(result)
    # hls.js reports the refused load as a non-fatal ERROR before retrying; nothing else may appear.
    recovered = [e for e in result["T"]["errors"] if e.get("code") == 403 and not e["fatal"]]
    others = [
        e
        for e in result["T"]["errors"]
        if e not in recovered and not (e["details"] in STARTUP_BENIGN and not e["fatal"])
    ]
    assert others == [], others
    assert result["switch"] and result["outcome"] == "played", result.get("error")
    assert result["denial"] is None, "the banner is cleared once the refusal is handled"
