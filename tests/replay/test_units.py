"""The pure parts: playlist scanning, expectations, scenario files, cookies and token helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gateway.dev.live_origin import LiveConfig, LiveStream, LowLatencyConfig, load_vod_source
from gateway.errors import ConfigError
from gateway.replay.client import CookieJar, token_in_url, with_token
from gateway.replay.expectations import DenialFacts, classify
from gateway.replay.origins import DEFAULT_SOURCE
from gateway.replay.playlist import cross_check, parse_master, rendition_name, scan_media
from gateway.replay.scenario import ExpectedDenial, load_scenario, scenario_from_mapping

START = 1_800_000_000.0


@pytest.fixture(scope="module")
def live() -> LiveStream:
    config = LiveConfig(start_time=START, dvr_window_seconds=40, key_rotation_every=4, ll_hls=LowLatencyConfig())
    return LiveStream(config, load_vod_source(DEFAULT_SOURCE))


def test_scanner_agrees_with_m3u8_on_live_and_ll_hls_playlists(live: LiveStream) -> None:
    text = live.media_playlist("v270", START + 3 * 3600 + 0.7).decode()
    scanned = scan_media(text)
    assert cross_check(text, scanned) is None
    assert scanned.target_duration == 2 and scanned.can_block_reload and scanned.last_part is not None
    assert len(scanned.segments) >= 20 and scanned.segments[-1].msn == scanned.last_msn
    assert {s.key_uri for s in scanned.segments} >= {f"../keys/{scanned.last_msn // 4}.key"}
    assert scanned.msn_behind_edge(10) == scanned.last_msn - 4
    assert scanned.msn_behind_edge(10_000) == scanned.segments[0].msn
    broken = text.replace("seg", "xseg", 1)
    assert cross_check(text, scan_media(broken)) is not None


def test_master_variants_sorted_with_their_audio(live: LiveStream) -> None:
    variants = parse_master(live.master_playlist().decode(), "https://gw.test/live/title-9000/master.m3u8?token=t")
    assert [v.name for v in variants] == ["v144", "v270", "v360"]
    assert all(v.audio_url == "https://gw.test/live/title-9000/a-en/index.m3u8" for v in variants)
    assert rendition_name("https://gw.test/x/v144/index.m3u8?token=a") == "v144"
    assert rendition_name("https://gw.test/x/low.m3u8") == "low"


def facts(**overrides: object) -> DenialFacts:
    base: dict[str, object] = dict(
        t=100.0,
        reason="ip",
        player="p1",
        session_ends_at=1000.0,
        session_created_at=0.0,
        last_ip_change_at=50.0,
        ip_binding=True,
        revoked_at=None,
        revoke_expected=False,
    )
    base.update(overrides)
    return DenialFacts(**base)  # type: ignore[arg-type]


def test_expectations() -> None:
    assert classify(facts(), ())[0] is True
    assert classify(facts(ip_binding=False), ())[0] is False  # a gateway that binds when it should not
    assert classify(facts(session_created_at=60.0), ())[0] is False  # the new session is refused: a bug
    assert classify(facts(reason="expired"), ())[0] is False
    assert classify(facts(reason="expired", t=1000.0), ())[0] is True
    assert classify(facts(reason="missing", t=1001.0), ())[0] is True  # cookie mode: the cookie died with it
    assert classify(facts(reason="revoked", revoked_at=90.0, revoke_expected=True), ())[0] is True
    assert classify(facts(reason="revoked", revoked_at=90.0), ())[0] is False
    assert classify(facts(reason="acl"), (ExpectedDenial("acl", 50, 150),))[0] is True
    assert classify(facts(reason="acl"), (ExpectedDenial("acl", 0, 99),))[0] is False
    assert classify(facts(reason="acl"), (ExpectedDenial("acl", player="p2"),))[0] is False


def test_scenario_files(tmp_path: Path) -> None:
    scenario = scenario_from_mapping(
        {
            "hours": 1,
            "players": [{"count": 2, "renewal": "refresh"}, {"name": "solo", "audio": False}],
            "expect": [{"reason": "expired", "after": 10}],
            "origin": {"ll_hls": True},
        }
    )
    assert scenario.duration_seconds == 3600 and [p.name for p in scenario.players] == ["p1", "p2", "solo"]
    assert [p.start_variant for p in scenario.players] == [0, 1, 0]
    assert scenario.expect[0].until == math.inf and scenario.origin.ll_hls
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"minutes": 5, "gateway": {"media_ttl_seconds": 20}}))
    assert load_scenario(path).gateway.media_ttl_seconds == 20
    for bad in ({"players": [{"pauses": [{"at": 1}]}]}, {"gateway": {"media_ttl_seconds": "30"}}, {"nope": 1}):
        with pytest.raises(ConfigError):
            scenario_from_mapping(bad)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_scenario(path)


def test_cookie_jar_drops_expired_cookies_like_a_browser() -> None:
    jar = CookieJar()
    jar.update(("gw_token=abc; Path=/live/t/; Max-Age=300; HttpOnly; Secure; SameSite=Lax",), now=10.0)
    assert jar.header(now=309.0, path="/live/t/v1/seg1.ts") == "gw_token=abc"
    assert jar.header(now=309.0, path="/api/sessions/x/refresh") is None  # Path = the title prefix
    assert jar.header(now=310.0, path="/live/t/v1/seg1.ts") is None
    jar.update(("broken=\x00",), now=0.0)  # ignored, never raised


def test_token_helpers_keep_every_other_query_byte() -> None:
    url = "https://gw.test/live/t/v1/index.m3u8?token=OLD&_HLS_msn=5"
    assert token_in_url(url, "token") == "OLD"
    assert with_token(url, "token", "NEW") == "https://gw.test/live/t/v1/index.m3u8?token=NEW&_HLS_msn=5"
    assert with_token("https://gw.test/a.ts", "token", "T") == "https://gw.test/a.ts?token=T"
