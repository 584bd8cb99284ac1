"""Real time: the same players against a gateway served by uvicorn on 127.0.0.1 (via the CLI)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from gateway.dev.live_origin import LiveConfig, LiveStream, load_vod_source
from gateway.dev.live_origin.server import build_live_app
from gateway.http.app import build_app
from gateway.replay.cli import register
from gateway.replay.origins import DEFAULT_SOURCE
from gateway.replay.scenario import GatewaySpec, Scenario
from gateway.replay.simulate import gateway_settings
from tests.support.servers import serve_app

ASSET = "/live/title-9000/master.m3u8"


def test_realtime_against_a_served_gateway(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    live = build_live_app(
        LiveStream(LiveConfig(start_time=now - 60, dvr_window_seconds=20), load_vod_source(DEFAULT_SOURCE))
    )
    with serve_app(live) as origin_url:
        # Media tokens live 2 s (+1 s leeway): the 4-s pause outlives them, the playlist token does not die.
        spec = Scenario(gateway=GatewaySpec(media_ttl_seconds=2, leeway_seconds=1))
        gateway = build_app(gateway_settings(spec, asset=ASSET, origin_base=f"{origin_url}/live/"))
        with serve_app(gateway) as gateway_url:
            parser = argparse.ArgumentParser(prog="gateway")
            register(parser.add_subparsers(dest="command", required=True))
            flags = "--duration 7 --players 2 --abr-every 2 --pause-at 2 --pause-for 4 --max-requests 400"
            argv = ["replay", "realtime", "--gateway", gateway_url, "--asset", ASSET, *flags.split()]
            args = parser.parse_args([*argv, "--report", str(tmp_path)])
            started = time.monotonic()
            status = args.func(args)
            assert time.monotonic() - started < 15
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 0, (report["denials"][:3], report["errors"][:3], capsys.readouterr().out)
    assert report["target"]["kind"] == "realtime" and 6 <= report["timing"]["simulated_seconds"] <= 10
    totals = report["totals"]
    assert totals["sessions"] == 2 and totals["denials"] == 0
    assert sum(totals["requests_by_kind"]["segment"].values()) >= 2 * 4
    assert totals["renewals"] >= 2  # the media token rolled across the pause
    assert {e["type"] for lane in report["timeline"] for e in lane["events"]} >= {"pause", "resume", "switch"}
