"""The origins `simulate` replays against: the live origin simulator (gateway/dev/live_origin) or a recording."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.dev.demo import REPO
from gateway.errors import ConfigError
from gateway.replay.recorded_origin import Recording, build_recorded_origin
from gateway.replay.scenario import Scenario

DEFAULT_SOURCE = REPO / "fixtures" / "media" / "vod" / "title-9000"
TICK_OFFSET_SECONDS = 0.25  # players act just after each segment boundary, never exactly on it


@dataclass
class Origin:
    app: Any
    mount: str  # gateway mount, e.g. /live/
    base: str  # origin base URL for that mount
    asset: str
    target_duration: float
    start_epoch: float
    duration: float
    description: dict[str, Any]


def live_origin_package() -> Any:
    """The live origin simulator package (shipped in gateway/dev/live_origin)."""
    import gateway.dev.live_origin as live

    return live


@functools.lru_cache(maxsize=2)
def _source(path: str) -> Any:
    return live_origin_package().load_vod_source(path)  # decrypts every segment once: share it between runs


def mount_of(asset: str) -> str:
    first = asset.strip("/").split("/", 1)[0]
    if not first or "/" not in asset.strip("/"):
        raise ConfigError(f"asset must be a path like /live/<stream>/master.m3u8, got {asset!r}")
    return f"/{first}/"


def simulator_origin(scenario: Scenario, clock: Any, source: Path) -> Origin:
    live = live_origin_package()
    from gateway.dev.live_origin.server import build_live_app

    vod = _source(str(source))
    o = scenario.origin
    probe = live.LiveStream(live.LiveConfig(start_time=0.0), vod)
    step = float(probe.target_duration)
    longest = max(max(r.durations) for r in vod.renditions)
    prefill = math.ceil(max(o.dvr_window_seconds, o.window_segments * longest) / step + 1) * step
    config = live.LiveConfig(
        start_time=scenario.start_epoch - TICK_OFFSET_SECONDS - prefill,
        window_segments=o.window_segments,
        dvr_window_seconds=o.dvr_window_seconds,
        key_rotation_every=o.key_rotation_every,
        ll_hls=live.LowLatencyConfig(part_target_seconds=o.part_target_seconds) if o.ll_hls else None,
    )
    app = build_live_app(live.LiveStream(config, vod), clock)
    mount = mount_of(scenario.asset)
    description = {"kind": "live-simulator", "source": str(source), "stream": app.state.stream_name}
    description.update(dvr_window_seconds=o.dvr_window_seconds, ll_hls=o.ll_hls)
    return Origin(
        app=app,
        mount=mount,
        base=f"http://live-origin{mount}",
        asset=scenario.asset,
        target_duration=step,
        start_epoch=scenario.start_epoch,
        duration=scenario.duration_seconds,
        description=description,
    )


def recorded_origin(scenario: Scenario, clock: Any, recording: Recording, directory: Path) -> Origin:
    mount = mount_of(recording.master_path)
    duration = min(scenario.duration_seconds, recording.playable_seconds)
    if duration <= 0:
        raise ConfigError(f"--recording {directory}: too short to replay")
    description = {"kind": "recording", "directory": str(directory), "origin": recording.origin}
    return Origin(
        app=build_recorded_origin(recording, clock),
        mount=mount,
        base=f"http://recorded-origin{mount}",
        asset=recording.master_path,
        target_duration=recording.target_duration,
        start_epoch=recording.playable_from,
        duration=duration,
        description=description,
    )
