"""dash.js and shaka-player play the bundled DASH title on the demo page, through the gateway (Debian's Chromium).

The demo page (`players/index.html`, `?player=dashjs|shaka`) renews the session token through each
player's request hook (dash.js 5 request interceptor, shaka request filter). These tests prove, in every
delivery mode the gateway offers for a static MPD (query, cookie, hybrid, path):
- the title plays with no HTTP status >= 400 and no player error event, fatal or not;
- a switch forced through the player API (the page's quality button) to a Representation never loaded
  before (the page starts pinned to the lowest) loads and shows it, with no refusal;
- with a 3 s session token and no leeway, the page outlives at least ten token expiries (query and cookie
  mode) with 0 × 403: it plays the title at 1x, waits at the end, seeks back and plays on, every media
  request carrying the token current when it was sent, while the first token is refused by then;
- with renewal ahead of expiry off (`renew=reactive`), dash.js recovers from a `403 expired`: the response
  interceptor marks the token stale, dash.js retries, and the request interceptor refreshes first (shaka
  never retries a 403, so it has no such path).

Needs node, npm and /usr/bin/chromium: missing ones skip locally and fail in CI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.browser import test_demo_playback as vod
from tests.browser import test_vod_no_refresh as no_refresh

pytestmark = pytest.mark.browser

node = vod.node
players = no_refresh.players

DASH_PLAYERS = ("dashjs", "shaka")
MODES = ("query", "cookie", "hybrid", "path")
EXPIRY_MODES = ("query", "cookie")
TOKEN_TTL_SECONDS = 3  # the session token: the page renews it at 75 % of its life
MIN_EXPIRIES = 10
# The expiry run: 16 s of media at 1x with 4 s of buffer, then the page waits at the end until this long
# after the MPD was served, seeks back to 0 and plays 3 s more (the session's tokens keep expiring meanwhile).
SEEK_BACK_AFTER_MS = 26_000
AFTER_SEEK_SECONDS = 3
EXPIRY_RUN_TIMEOUT_SECONDS = 50


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    with vod.running_demo(tmp_path_factory.mktemp("dash-demo")) as running:
        yield running


@contextlib.contextmanager
def short_token_demo(state_dir: Path) -> Iterator[vod.Demo]:
    """3 s session tokens, 2 s media tokens and no leeway: an expired token is refused at once."""
    with vod.running_demo(
        state_dir, leeway_seconds=0, token_ttl_seconds=TOKEN_TTL_SECONDS, media_ttl_seconds=2
    ) as running:
        yield running


@pytest.fixture(scope="module")
def expiring_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vod.Demo]:
    with short_token_demo(tmp_path_factory.mktemp("dash-expiry")) as running:
        yield running


def dash_asset(demo: vod.Demo, mode: str) -> str:
    """The DASH title under the mode's mount."""
    asset = no_refresh.premium_asset(demo, "dash")
    query_mount = demo.mount("query")
    return demo.mount(mode) + asset[len(query_mount) :]


def path_of(url: str) -> str:
    return urlsplit(url).path


def title_requests(result: dict[str, Any], demo: vod.Demo, mode: str) -> list[dict[str, Any]]:
    """Requests for the title's MPD, init and media segments, whatever mode put them where."""
    title = dash_asset(demo, mode).rsplit("/", 1)[0] + "/"
    found = [r for r in result["requests"] if title in path_of(r["url"])]
    assert found, f"no requests under {title}: {[r['url'] for r in result['requests']]}"
    return found


def assert_mode_carried_the_credential(requests: list[dict[str, Any]], mode: str) -> None:
    """Each mode's credential went where the mode puts it, on every request of the title."""
    if mode == "query":
        assert all(vod.token_of(r["url"]) for r in requests), "a token on every request"
    elif mode == "path":
        assert all(path_of(r["url"]).startswith("/t/") for r in requests), "a token in every path"
    else:  # cookie; hybrid after the signed MPD URL
        first, rest = (requests[0], requests[1:]) if mode == "hybrid" else (None, requests)
        if first is not None:
            assert path_of(first["url"]).endswith(".mpd") and vod.token_of(first["url"]), first["url"]
        assert [r["url"] for r in rest if vod.token_of(r["url"])] == [], "no token in a cookie-mode URL"
        # The first request for each URL (a repeat may come from the browser's cache, which sends no header).
        firsts = {path_of(r["url"]): r for r in sorted(rest, key=lambda r: -int(r["seq"]))}
        assert [p for p, r in firsts.items() if not r.get("cookie")] == [], "every request sends the cookie"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("player", DASH_PLAYERS)
def test_dash_plays_and_switches_to_a_representation_never_loaded(
    players: str, demo: vod.Demo, player: str, mode: str, record_property: vod.RecordProperty
) -> None:
    result = vod.play(
        players,
        demo,
        *("--user", vod.PAID_USER, "--asset", dash_asset(demo, mode), "--player", player),
        *("--switch-level", "top", "--rate", "2", "--min-time", "4"),
    )
    summary = {k: result.get(k) for k in ("outcome", "error", "currentTime", "denial", "switch", "elapsed_ms")}
    assert result["outcome"] == "played" and result["currentTime"] > 4, summary
    assert result["bad_responses"] == [], result["bad_responses"]
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [] and result["page_errors"] == [], (failed, result["page_errors"])
    assert result["T"]["errors"] == [], "player error events"
    session = result["T"]["session"]
    assert (session["mode"], session["player"]) == (mode, player), session

    # The switch: pinned to the lowest, then the top one, never requested before the click.
    levels, switch = result["T"]["levels"], result["switch"]
    assert len(levels) == 3 and switch["level"] == 2 and switch["levels_loaded_before"] == [0], switch
    assert 2 in result["T"]["switched"] and result["videoHeight"] == levels[2]["height"], result["T"]["switched"]
    requests = title_requests(result, demo, mode)
    top_rep = [r for r in requests if "/v360/" in path_of(r["url"])]
    assert top_rep and {r["status"] for r in top_rep} == {200}, top_rep
    first_top = min(r["seq"] for r in top_rep)
    assert all("/v360/" not in path_of(r["url"]) for r in requests if r["seq"] < first_top)
    assert {r["status"] for r in requests} == {200}
    assert_mode_carried_the_credential(requests, mode)
    record_property("wall_ms", result["elapsed_ms"])


def expiry_page_url(demo: vod.Demo, player: str, mode: str) -> str:
    query = {"user": vod.PAID_USER, "asset": dash_asset(demo, mode), "player": player, "autostart": "1"}
    return f"{demo.url}/?{urlencode({**query, 'rate': '1', 'buffer': '4'})}"


@pytest.mark.parametrize("mode", EXPIRY_MODES)
@pytest.mark.parametrize("player", DASH_PLAYERS)
def test_dash_outlives_ten_token_expiries_with_no_403(
    players: str, expiring_demo: vod.Demo, player: str, mode: str, record_property: vod.RecordProperty
) -> None:
    result = no_refresh.seek_back(
        players,
        expiry_page_url(expiring_demo, player, mode),
        stale_ms=SEEK_BACK_AFTER_MS,
        after_seek_s=AFTER_SEEK_SECONDS,
        timeout_s=EXPIRY_RUN_TIMEOUT_SECONDS,
    )
    summary = {k: result.get(k) for k in ("outcome", "phase", "error", "end", "seek", "final", "elapsed_ms")}
    assert result["bad_responses"] == [], result["bad_responses"]
    failed = [f for f in result["failed_requests"] if "ERR_ABORTED" not in (f.get("failure") or "")]
    assert failed == [] and result["page_errors"] == [], (failed, result["page_errors"])
    assert result["outcome"] == "played", summary
    page = result["T"]
    assert page["errors"] == [] and page["denials"] == [], (page["errors"], page["denials"])

    requests = title_requests(result, expiring_demo, mode)
    media = [r for r in requests if not path_of(r["url"]).endswith(".mpd")]
    last_sent_s = max(r["at_ms"] for r in media) / 1000
    # Every token the page held (the session's first, then each refresh) and when it expired.
    issued = [e for e in page["events"] if e["type"] in ("session_started", "refreshed")]
    expired = sorted(float(e["expires_at"]) for e in issued if float(e["expires_at"]) < last_sent_s)
    assert len(expired) >= MIN_EXPIRIES, f"only {len(expired)} token expiries during playback: {summary}"
    # Media kept flowing across them: segments were fetched after the tenth expiry (the seek back).
    after = [r for r in media if r["at_ms"] / 1000 > expired[MIN_EXPIRIES - 1]]
    assert len(after) >= 2, [path_of(r["url"]) for r in media]
    assert {r["status"] for r in requests} == {200}
    if mode == "query":
        # The request interceptor/filter swapped in each refreshed token: many tokens, and the first one is
        # dead by now (the MPD's own media tokens, which live until the session's cap, were never used).
        tokens = [vod.token_of(r["url"]) for r in sorted(media, key=lambda r: r["seq"])]
        assert len(set(tokens)) >= MIN_EXPIRIES // 2, f"{len(set(tokens))} distinct tokens"
        stale = httpx.get(media[0]["url"], timeout=10)
        assert stale.status_code == 403 and stale.headers["x-token-denial"] == "expired", stale.status_code
    record_property("token_expiries", len(expired))
    record_property("wall_ms", result["elapsed_ms"])
    print(f"{player}/{mode}: {len(expired)} token expiries, {len(media)} media requests, all 200")


def test_dashjs_refreshes_once_after_403_expired_and_retries(
    players: str, expiring_demo: vod.Demo, record_property: vod.RecordProperty
) -> None:
    # `renew=reactive`: no renewal ahead of expiry, so after a pause longer than the token's life the next
    # request (the switch's init segment, never loaded) is refused `expired`. The response interceptor marks
    # the token stale, dash.js retries the download by itself, and the request interceptor refreshes first.
    idle = TOKEN_TTL_SECONDS + 2
    result = vod.play(
        players,
        expiring_demo,
        *("--user", vod.PAID_USER, "--asset", dash_asset(expiring_demo, "query"), "--player", "dashjs"),
        *("--renew", "reactive", "--idle-s", str(idle), "--switch-level", "top", "--rate", "1", "--min-time", "4"),
    )
    vod.assert_expired_refreshed_and_retried(result)
    assert result["T"]["errors"] == [], "dash.js recovered before raising an error"
    assert result["switch"] and result["outcome"] == "played", result.get("error")
    assert result["denial"] is None, "the banner is cleared once the refusal is handled"
    record_property("wall_ms", result["elapsed_ms"])
