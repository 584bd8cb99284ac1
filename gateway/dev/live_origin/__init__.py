"""A sliding-window live HLS origin simulator looping a bundled VOD title.

`model` is the pure, clock-injected core (`LiveStream`); `server` the Starlette edge
(`build_live_origin`); `clock` the simulated/accelerated clocks; `python -m gateway.dev.live_origin`
runs it under uvicorn.
"""

from gateway.dev.live_origin.clock import ScaledClock, SimulatedClock
from gateway.dev.live_origin.config import LiveConfig, LowLatencyConfig
from gateway.dev.live_origin.model import DirectiveError, LiveStream, PlaylistNotReady
from gateway.dev.live_origin.source import VodSource, load_vod_source

__all__ = [
    "DirectiveError",
    "LiveConfig",
    "LiveStream",
    "LowLatencyConfig",
    "PlaylistNotReady",
    "ScaledClock",
    "SimulatedClock",
    "VodSource",
    "load_vod_source",
]
