"""Settings of one simulated live stream: a frozen object, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LowLatencyConfig:
    """LL-HLS (rfc8216bis): parts, preload hints, rendition reports, blocking reload, delta updates.

    `part_target_seconds` is the requested part duration: each segment is cut into
    `ceil(duration / part_target_seconds)` equal parts, and the advertised PART-TARGET is the
    longest part actually produced (any rendition), rounded up to the millisecond.
    `can_skip_until_seconds` (CAN-SKIP-UNTIL) defaults to 6 target durations, the spec's minimum.
    """

    part_target_seconds: float = 0.5
    can_skip_until_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.part_target_seconds > 0:
            raise ValueError(f"part_target_seconds must be > 0, got {self.part_target_seconds}")


@dataclass(frozen=True)
class LiveConfig:
    """One live stream looping a VOD title.

    - `start_time`: epoch seconds at which MSN 0 begins (segment m is available once it has ended).
    - `target_duration`: EXT-X-TARGETDURATION; None derives it from the source (the longest segment,
      rounded); a value below that is rejected. Segment durations are always the VOD's own.
    - `window_segments`: the live window (segments in a playlist) when no DVR window is set.
    - `dvr_window_seconds`: when > 0, the playlist keeps every segment starting within that many
      seconds before the last segment's end (never fewer than `window_segments`).
    - `discontinuity_every`: None puts EXT-X-DISCONTINUITY only at each loop wrap (required there:
      timestamps restart); N adds one every N segments as well.
    - `key_rotation_every`: None encrypts everything with key 0; N switches to key `msn // N`
      (`keys/<n>.key`) every N segments. `encrypt=False` serves clear segments (no EXT-X-KEY).
    - `key_seed`: secret from which every key is derived (see `crypto.derive_key`).
    - `ll_hls`: None for a classic live playlist; otherwise LL-HLS as configured there.
    - `program_date_time`: emit EXT-X-PROGRAM-DATE-TIME (first segment and after discontinuities).
    """

    start_time: float
    target_duration: int | None = None
    window_segments: int = 6
    dvr_window_seconds: float = 0.0
    discontinuity_every: int | None = None
    key_rotation_every: int | None = None
    encrypt: bool = True
    key_seed: bytes = b"gateway.dev.live_origin demo seed"
    ll_hls: LowLatencyConfig | None = None
    program_date_time: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.start_time):
            raise ValueError(f"start_time must be finite, got {self.start_time}")
        if self.target_duration is not None and self.target_duration < 1:
            raise ValueError(f"target_duration must be >= 1, got {self.target_duration}")
        if self.window_segments < 1:
            raise ValueError(f"window_segments must be >= 1, got {self.window_segments}")
        if not self.dvr_window_seconds >= 0:
            raise ValueError(f"dvr_window_seconds must be >= 0, got {self.dvr_window_seconds}")
        for name in ("discontinuity_every", "key_rotation_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")
        if self.key_rotation_every is not None and not self.encrypt:
            raise ValueError("key_rotation_every needs encrypt=True")
