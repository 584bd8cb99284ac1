"""Record the live origin simulator (served by a real uvicorn on 127.0.0.1, 10x faster than real time) and
replay the recording as the origin in simulated time."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gateway.dev.live_origin import LiveConfig, LiveStream, ScaledClock, load_vod_source
from gateway.dev.live_origin.server import build_live_app
from gateway.replay.origins import DEFAULT_SOURCE
from gateway.replay.recorded_origin import load_recording
from gateway.replay.recording import record
from gateway.replay.report import build_report
from gateway.replay.scenario import PlayerSpec, Scenario
from gateway.replay.simulate import simulate
from tests.support.servers import serve_app

SPEED = 10.0


async def test_record_a_live_origin_and_replay_the_recording(tmp_path: Path) -> None:
    now = time.time()
    stream = LiveStream(
        LiveConfig(start_time=now - 60, dvr_window_seconds=20, key_rotation_every=5), load_vod_source(DEFAULT_SOURCE)
    )
    app = build_live_app(stream, ScaledClock(now, SPEED))
    out = tmp_path / "rec"
    with serve_app(app) as url:
        started = time.monotonic()
        stats = await record(f"{url}/live/title-9000/master.m3u8", out, duration=3.0, interval=0.2, time_scale=SPEED)
        assert time.monotonic() - started < 10
    assert stats.failures == [] and stats.skipped == []
    assert stats.rounds >= 8 and stats.playlist_versions >= 5 * 8 and stats.files > 30

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["master_path"] == "/live/title-9000/master.m3u8" and manifest["target_duration"] == 2
    recording = load_recording(out)
    assert 20 <= recording.playable_seconds <= 40  # 3 s of real time at 10x
    assert {p.rsplit("/", 2)[-2] for p in recording.playlists if p.endswith("index.m3u8")} == {
        "a-en",
        "a-fr",
        "v144",
        "v270",
        "v360",
    }

    scenario = Scenario(
        duration_seconds=3600, players=(PlayerSpec(abr_every_seconds=6), PlayerSpec(name="p2", start_variant=2))
    )
    report = build_report(await simulate(scenario, recording=out))
    assert report["verdict"] == "pass", (report["denials"][:3], report["errors"][:3], report["stalls"])
    assert report["target"]["origin"]["kind"] == "recording"
    assert report["timing"]["simulated_seconds"] <= recording.playable_seconds + 1e-6  # clipped to the recording
    totals = report["totals"]
    assert sum(totals["requests_by_kind"]["segment"].values()) >= 2 * 8
    assert sum(totals["requests_by_kind"]["key"].values()) >= 2
    assert report["players"][0]["switches"] >= 2
