"""Run the live origin: `python -m gateway.dev.live_origin --source fixtures/media/vod/title-9000`
(add `--dash-source fixtures/media/vod/dash-9000` for live DASH beside it)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import uvicorn

from gateway.dev.live_origin.clock import ScaledClock
from gateway.dev.live_origin.config import LiveConfig, LowLatencyConfig
from gateway.dev.live_origin.dash import LiveDash, LiveDashConfig
from gateway.dev.live_origin.dash_source import load_dash_source
from gateway.dev.live_origin.model import LiveStream
from gateway.dev.live_origin.server import build_live_app
from gateway.dev.live_origin.source import load_vod_source


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gateway.dev.live_origin", description=__doc__)
    parser.add_argument("--source", required=True, help="VOD HLS directory holding master.m3u8")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--stream-name", default=None, help="default: the source directory's name")
    parser.add_argument("--target-duration", type=int, default=None, help="default: from the source")
    parser.add_argument("--window", type=int, default=6, help="live window in segments")
    parser.add_argument("--dvr", type=float, default=0.0, help="DVR window in seconds (0: off)")
    parser.add_argument("--key-rotation", type=int, default=None, help="new key every N segments")
    parser.add_argument("--clear", action="store_true", help="serve clear segments (no EXT-X-KEY)")
    parser.add_argument("--discontinuity-every", type=int, default=None)
    parser.add_argument("--no-program-date-time", action="store_true")
    parser.add_argument("--ll-hls", action="store_true", help="LL-HLS: parts, hints, blocking reload")
    parser.add_argument("--part-target", type=float, default=0.5, help="seconds (with --ll-hls)")
    parser.add_argument("--speed", type=float, default=1.0, help="run stream time N x faster")
    parser.add_argument("--dash-source", default=None, help="static fMP4 DASH directory to serve as live DASH")
    parser.add_argument("--dash-window", type=float, default=30.0, help="timeShiftBufferDepth in seconds")
    parser.add_argument("--dash-patch-ttl", type=int, default=None, help="PatchLocation@ttl (default: no patches)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    source = load_vod_source(args.source)
    now = time.time()
    # Start the stream a full window ago, so that the first playlist is already full.
    longest = max(source.rendition(source.reference).durations)
    config = LiveConfig(
        start_time=now - max(args.dvr, args.window * longest),
        target_duration=args.target_duration,
        window_segments=args.window,
        dvr_window_seconds=args.dvr,
        discontinuity_every=args.discontinuity_every,
        key_rotation_every=args.key_rotation,
        encrypt=not args.clear,
        ll_hls=LowLatencyConfig(part_target_seconds=args.part_target) if args.ll_hls else None,
        program_date_time=not args.no_program_date_time,
    )
    clock: Callable[[], float] = time.time if args.speed == 1.0 else ScaledClock(now, args.speed)
    dash = None
    if args.dash_source:
        dash_config = LiveDashConfig(
            start_time=now - args.dash_window, time_shift_buffer_seconds=args.dash_window,
            patch_ttl_seconds=args.dash_patch_ttl,
        )  # fmt: skip
        dash = LiveDash(dash_config, load_dash_source(args.dash_source))
    app = build_live_app(LiveStream(config, source), clock, stream_name=args.stream_name, dash=dash)
    print(f"live origin: http://{args.host}:{args.port}/live/{app.state.stream_name}/master.m3u8", flush=True)
    if dash is not None:
        print(f"live DASH:   http://{args.host}:{args.port}/live/{dash.source.name}/manifest.mpd", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
