"""The acceptance run: a 3-hour live session in simulated time, with zero unexpected denials.

Query mode, rolling scoped tokens only (players that just reload playlists), a media-token TTL of 30 s
(so the media token rolls every 15 s: 720 renewals per player), ABR switches up and down every minute
(and every 90 s), a pause longer than the media TTL and a seek back into the DVR window.
"""

from __future__ import annotations

import time

from gateway.replay.report import build_report
from gateway.replay.scenario import GatewaySpec, OriginSpec, Pause, PlayerSpec, Scenario, SeekBack
from gateway.replay.simulate import simulate

HOURS = 3


async def test_three_hour_session_with_rolling_tokens_has_no_unexpected_denial() -> None:
    players = (
        PlayerSpec(
            name="p1",
            abr_every_seconds=60,
            audio=False,
            pauses=(Pause(at=3600, duration=300, resume="live"),),
            seeks=(SeekBack(at=7200, by=30),),
        ),
        PlayerSpec(
            name="p2",
            abr_every_seconds=90,
            start_variant=2,
            audio=False,
            pauses=(Pause(at=5400, duration=120, resume="dvr"),),
            seeks=(SeekBack(at=1800, by=40),),
        ),
    )
    scenario = Scenario(
        name="3 h soak",
        duration_seconds=HOURS * 3600,
        players=players,
        gateway=GatewaySpec(mode="query", media_ttl_seconds=30, token_ttl_seconds=300, max_life_seconds=4 * 3600),
        origin=OriginSpec(dvr_window_seconds=60, key_rotation_every=30),
    )
    started = time.monotonic()
    result = await simulate(scenario)
    elapsed = time.monotonic() - started
    report = build_report(result)
    totals = report["totals"]

    assert elapsed < 60, f"a 3-hour session took {elapsed:.1f} s of wall time"
    assert report["timing"]["simulated_seconds"] == HOURS * 3600
    assert totals["renewals"] >= 500, totals
    assert totals["unexpected_denials"] == 0 and totals["denials"] == 0, report["denials"][:5]
    assert totals["stalls"] == 0 and totals["errors"] == 0, (report["stalls"], report["errors"][:5])
    assert report["verdict"] == "pass" and report["exit_status"] == 0
    for player in report["players"]:
        assert player["state"] == "playing"
        assert player["renewals"] >= 650  # one new media token per 15-s bucket, minus the pause
        assert player["renditions_played"] == ["v144", "v270", "v360"]
        assert player["switches"] >= 100
    events = {e["type"] for lane in report["timeline"] for e in lane["events"]}
    assert {"pause", "resume", "seek", "switch"} <= events
    # Every segment of 3 hours was fetched (nothing skipped), the pause aside.
    segments = sum(totals["requests_by_kind"]["segment"].values())
    assert segments >= 2 * (HOURS * 3600 - 420) / 2
