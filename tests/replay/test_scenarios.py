"""Replay scenarios in simulated time: delivery modes, renewal strategies and the denials they must (not) cause."""

from __future__ import annotations

from typing import Any

from gateway.replay.report import build_report
from gateway.replay.scenario import (
    ExpectedDenial,
    GatewaySpec,
    IpChange,
    OriginSpec,
    Pause,
    PlayerSpec,
    Revoke,
    Scenario,
    SeekBack,
)
from gateway.replay.simulate import simulate


async def run(scenario: Scenario, **kwargs: Any) -> dict[str, Any]:
    return build_report(await simulate(scenario, **kwargs))


def denial_reasons(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = report["denials_by_reason"]
    return result


async def test_cookie_mode_for_hours_renews_the_cookie_on_playlist_responses() -> None:
    player = PlayerSpec(abr_every_seconds=120, audio=False, pauses=(Pause(at=3000, duration=120),))
    scenario = Scenario(
        duration_seconds=2 * 3600,
        players=(player,),
        gateway=GatewaySpec(mode="cookie", token_ttl_seconds=300),
    )
    report = await run(scenario)
    assert report["verdict"] == "pass", (report["denials"][:3], report["errors"][:3], report["stalls"])
    assert report["target"]["asset"].startswith("/cookie/live/")
    lane = report["timeline"][0]
    cookies = [t for t in lane["tokens"] if t["kind"] == "cookie"]
    # Re-issued once half its life is gone: about every 150 s over 2 hours, never expired when used.
    assert len(cookies) >= 40 and report["totals"]["renewals"] == len(cookies) - 1
    assert all(t["last_used"] <= t["to"] for t in cookies)
    assert not [t for t in lane["tokens"] if t["kind"] == "media"]  # manifests carry no tokens


async def test_cookie_mode_pause_longer_than_the_cookie_needs_the_refresh_api() -> None:
    """A browser drops the expired cookie: with no refresh the player is refused `missing` (caught)."""
    pause = (Pause(at=300, duration=480),)
    rolling = Scenario(duration_seconds=1200, players=(PlayerSpec(audio=False, pauses=pause),))
    rolling = Scenario(**{**rolling.__dict__, "gateway": GatewaySpec(mode="cookie", token_ttl_seconds=300)})
    report = await run(rolling)
    assert report["exit_status"] == 1
    assert denial_reasons(report) == {"missing": {"unexpected": report["totals"]["denials"]}}

    refresh = Scenario(
        duration_seconds=1200,
        players=(PlayerSpec(audio=False, pauses=pause, renewal="refresh"),),
        gateway=GatewaySpec(mode="cookie", token_ttl_seconds=300),
    )
    report = await run(refresh)
    assert report["verdict"] == "pass", report["denials"][:3]
    assert report["totals"]["refreshes"] >= 3


async def test_refresh_api_renewal_like_the_hls_js_page_survives_a_long_pause() -> None:
    player = PlayerSpec(
        renewal="refresh",
        audio=True,
        abr_every_seconds=45,
        pauses=(Pause(at=900, duration=600),),  # longer than the session token's life
        seeks=(SeekBack(at=1800, by=45),),
    )
    scenario = Scenario(
        duration_seconds=2700,
        players=(player,),
        gateway=GatewaySpec(token_ttl_seconds=120, media_ttl_seconds=30),
    )
    report = await run(scenario, player_transport="httpx")  # this one goes through httpx.AsyncClient
    assert report["verdict"] == "pass", (report["denials"][:3], report["errors"][:3])
    totals = report["totals"]
    # Ahead of expiry at 75 % of 120 s, plus one on resuming: ~ (2700 - 600) / 90.
    assert 20 <= totals["refreshes"] <= 30, totals
    lane = report["timeline"][0]
    kinds = {t["kind"] for t in lane["tokens"]}
    assert kinds == {"session"}, kinds  # every request carries the newest session token, as xhrSetup does
    assert totals["renewals"] == totals["refreshes"]
    assert report["players"][0]["audio_rendition"] == "a-en"  # the default of the variants' audio group


async def test_ip_change_with_ip_binding_is_an_expected_denial_then_a_new_session() -> None:
    player = PlayerSpec(audio=False, ip_changes=(IpChange(at=300, to="198.51.100.23", on_denial="recreate"),))
    scenario = Scenario(duration_seconds=900, players=(player,), gateway=GatewaySpec(ip_binding=True))
    report = await run(scenario)
    assert denial_reasons(report) == {"ip": {"expected": 1}}
    assert report["denials"][0]["why"] == "client address changed with ip_binding on"
    assert report["exit_status"] == 0 and report["players"][0]["sessions"] == 2
    assert report["players"][0]["state"] == "playing"

    # The same change when the player cannot re-create its session: still expected, the player stops.
    stop = PlayerSpec(audio=False, ip_changes=(IpChange(at=300, on_denial="stop"),))
    report = await run(Scenario(duration_seconds=600, players=(stop,), gateway=GatewaySpec(ip_binding=True)))
    assert report["totals"]["unexpected_denials"] == 0 and report["players"][0]["state"] == "stopped"
    assert report["exit_status"] == 1  # ...but a player that stops unexpectedly fails the run

    # Without ip_binding the change is invisible to the gateway.
    report = await run(Scenario(duration_seconds=600, players=(player,)))
    assert report["totals"]["denials"] == 0 and report["players"][0]["sessions"] == 1


async def test_session_past_its_maximum_life_ends_with_expected_denials() -> None:
    for mode, renewal in (("query", "rolling"), ("cookie", "refresh")):
        scenario = Scenario(
            duration_seconds=1200,
            players=(PlayerSpec(audio=False, renewal=renewal),),  # type: ignore[arg-type]
            gateway=GatewaySpec(mode=mode, max_life_seconds=600, token_ttl_seconds=240),  # type: ignore[arg-type]
        )
        report = await run(scenario)
        player = report["players"][0]
        assert player["state"] == "ended" and "maximum life" in player["stop_reason"], (mode, player)
        assert report["totals"]["denials"] >= 1 and report["totals"]["unexpected_denials"] == 0, report["denials"]
        assert all(d["t"] >= 600 and d["why"] == "past the session's maximum life" for d in report["denials"])
        assert report["exit_status"] == 0, report["failures"]


async def test_negative_controls_the_tool_catches_tokens_that_really_break() -> None:
    # 1. The session is revoked mid-run and nobody expected it.
    revoked = PlayerSpec(audio=False, revokes=(Revoke(at=300, expected=False),))
    report = await run(Scenario(duration_seconds=600, players=(revoked,)))
    assert report["exit_status"] == 1 and report["verdict"] == "fail"
    assert denial_reasons(report) == {"revoked": {"unexpected": 1}}
    assert report["players"][0]["state"] == "stopped"

    # ... and the same revocation, expected: reported, not a failure.
    expected = PlayerSpec(audio=False, revokes=(Revoke(at=300, expected=True),))
    report = await run(Scenario(duration_seconds=600, players=(expected,)))
    assert report["exit_status"] == 0 and denial_reasons(report) == {"revoked": {"expected": 1}}

    # 2. The instance that serves playlists (and mints media tokens) runs 60 s behind the edge that
    #    verifies segments: beyond the leeway, media tokens are dead on arrival.
    skewed = Scenario(
        duration_seconds=300,
        players=(PlayerSpec(audio=False),),
        gateway=GatewaySpec(media_ttl_seconds=30, skew_seconds=-60, skew_scope="playlists"),
    )
    report = await run(skewed)
    assert report["exit_status"] == 1
    assert report["denials_by_reason"]["expired"]["unexpected"] > 10
    assert report["totals"]["unexpected_stalls"] >= 1

    # Within the leeway (and for the session API only) the same skew is harmless.
    for skew, scope in ((-3.0, "playlists"), (-60.0, "api"), (60.0, "api")):
        ok = Scenario(
            duration_seconds=600,
            players=(PlayerSpec(audio=False, renewal="refresh"),),
            gateway=GatewaySpec(skew_seconds=skew, skew_scope=scope),  # type: ignore[arg-type]
        )
        report = await run(ok)
        assert report["exit_status"] == 0, (skew, scope, report["denials"][:3])

    # 3. A declared expectation turns the same denials into expected ones.
    declared = Scenario(**{**skewed.__dict__, "expect": (ExpectedDenial("expired"),)})
    report = await run(declared)
    assert report["totals"]["unexpected_denials"] == 0


async def test_ll_hls_blocking_reloads_through_the_gateway() -> None:
    scenario = Scenario(
        duration_seconds=240,
        players=(PlayerSpec(abr_every_seconds=30), PlayerSpec(name="p2", start_variant=2, audio=False)),
        origin=OriginSpec(ll_hls=True, dvr_window_seconds=30),
    )
    report = await run(scenario)
    assert report["verdict"] == "pass", (report["denials"][:3], report["errors"][:3])
    parts = report["totals"]["requests_by_kind"]["part"]
    assert sum(parts.values()) > 100 and set(parts) == {"200"}
