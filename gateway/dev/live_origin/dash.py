"""Live DASH: a pure, clock-injected dynamic MPD (and MPD patches) looping a static fMP4 DASH title.

Everything is a function of the time passed in, like `model.LiveStream`. Times are whole milliseconds:
`publishTime` is the instant an MPD or patch is rendered (floored to the millisecond), and the MPD at a
given `publishTime` is always the same document, so a patch from one to another is exact.

Resources, relative to `/live/<stream>/`:
  `manifest.mpd`                  the dynamic MPD (type="dynamic", SegmentTemplate + SegmentTimeline)
  `patch-<publish ms>.mpp`        an MPD patch (ISO/IEC 23009-1 §5.15, `application/dash-patch+xml`) from
                                  the MPD published at that instant to the current one; its URL is the
                                  MPD's `PatchLocation`, path-only (a gateway forwards no unknown query)
                                  and beside the MPD: players resolve a PatchLocation, even one inside a
                                  patch, against the MPD's URL (shaka, dash.js), so it resolves the same
                                  against either
  `<rep>/init.mp4`                the Representation's initialization segment, as in the VOD
  `<rep>/t<time>.m4s`             the media segment starting at `<time>` (`$Time$`, in the set's
                                  timescale, since availabilityStartTime); 404 until it is complete

Each AdaptationSet loops on its own timeline (the VOD's), so every track is gapless; the bundled title's
audio is 0.1 s shorter than its video, so sound and picture drift apart by that much a loop (a test tone:
nobody can tell), and each loop of audio starts with the encoder's priming frame again, overlapping the
previous loop's last frame by at most one AAC frame of decode time (MSE replaces the overlap). Live
segment `m` of a set is VOD segment `m % count` with `tfdt` moved on by
`m // count` loops (`fmp4.restamp`).

The MPD names every segment with `t` (one `S` per segment, no `r`), templates sit on each Representation,
and a patch addresses them by `@id` only (`/MPD/Period[@id='0']/AdaptationSet[@id='0']/Representation
[@id='v144']/SegmentTemplate/…`), single-quoted: what both dash.js and shaka resolve (shaka applies a
timeline patch once per Representation it reaches, so an AdaptationSet-level timeline would be extended
several times). Every patch restates each SegmentTemplate's `@media` and `@initialization`: a gateway that
rewrites them (tokens) then hands the player fresh URLs with every patch, as it does with every MPD.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from gateway.dev.live_origin.dash_source import DashRepresentation, DashSource, DashTrack
from gateway.dev.live_origin.fmp4 import restamp
from gateway.dev.live_origin.timeline import Timeline

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
PATCH_NS = "urn:mpeg:dash:schema:mpd-patch:2020"
MEDIA_TEMPLATE = "$RepresentationID$/t$Time$.m4s"
INIT_TEMPLATE = "$RepresentationID$/init.mp4"
PERIOD_ID = "0"
PATCH_GRACE_SECONDS = 10  # a patch is still served this long past its PatchLocation@ttl (as livesim2 does)


class PatchError(Exception):
    """A patch that cannot be served: `status` 425 (no newer MPD yet) or 410 (past its ttl) or 404."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class LiveDashConfig:
    """- `start_time`: availabilityStartTime (epoch seconds, used to the millisecond); segment 0 starts then.
    - `time_shift_buffer_seconds`: timeShiftBufferDepth, the window of segments each MPD lists.
    - `minimum_update_period_seconds`, `suggested_presentation_delay_seconds`: as in the MPD.
    - `patch_ttl_seconds`: PatchLocation@ttl; None: no PatchLocation (players reload the whole MPD)."""

    start_time: float
    time_shift_buffer_seconds: float = 30.0
    minimum_update_period_seconds: float = 2.0
    suggested_presentation_delay_seconds: float = 6.0
    patch_ttl_seconds: int | None = 60

    def __post_init__(self) -> None:
        if not math.isfinite(self.start_time):
            raise ValueError(f"start_time must be finite, got {self.start_time}")
        for name in ("time_shift_buffer_seconds", "minimum_update_period_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.suggested_presentation_delay_seconds >= 0:
            raise ValueError("suggested_presentation_delay_seconds must be >= 0")
        if self.patch_ttl_seconds is not None and self.patch_ttl_seconds < 1:
            raise ValueError(f"patch_ttl_seconds must be None or >= 1, got {self.patch_ttl_seconds}")


def iso_ms(epoch_ms: int) -> str:
    """xs:dateTime in UTC with milliseconds: `2026-12-06T15:41:00.123Z`."""
    when = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    return f"PT{seconds:g}S"


def _attrs(pairs: tuple[tuple[str, str], ...]) -> str:
    return "".join(f' {name}="{value}"' for name, value in pairs)


class LiveDash:
    """One live DASH stream; see the module docstring."""

    def __init__(self, config: LiveDashConfig, source: DashSource) -> None:
        self.config, self.source = config, source
        self.start_ms = round(config.start_time * 1000)
        self._timelines = {t.id: Timeline(t.durations, (1,) * len(t.durations)) for t in source.tracks}
        self._starts = {t.id: t.starts for t in source.tracks}
        longest = max(d / t.timescale for t in source.tracks for d in t.durations)
        self.max_segment_seconds = math.ceil(longest)

    # ---- time ---------------------------------------------------------------------------------
    @staticmethod
    def publish_ms(now: float) -> int:
        return math.floor(now * 1000)

    def _ticks(self, track: DashTrack, at_ms: int) -> int:
        return (at_ms - self.start_ms) * track.timescale // 1000

    def window(self, track: DashTrack, at_ms: int) -> range:
        """Live segment numbers the MPD published at `at_ms` lists for `track` (complete ones only)."""
        ticks = self._ticks(track, at_ms)
        if ticks <= 0:
            return range(0)
        timeline = self._timelines[track.id]
        last = timeline.segment_at(ticks) - 1  # the segment containing `ticks` is still being produced
        if last < 0:
            return range(0)
        depth = math.floor(self.config.time_shift_buffer_seconds * track.timescale)
        first = timeline.first_starting_at_or_after(timeline.end(last) - depth)
        return range(min(first, last), last + 1)

    def segment_time(self, track: DashTrack, m: int) -> int:
        return self._timelines[track.id].start(m)

    # ---- media --------------------------------------------------------------------------------
    def init_bytes(self, rep_id: str) -> bytes:
        return self.source.representation(rep_id)[1].init

    def segment_bytes(self, rep_id: str, time: int, now: float) -> bytes:
        """The segment of `rep_id` starting at `time`; LookupError if none starts there or it is not complete."""
        track, rep = self.source.representation(rep_id)
        timeline = self._timelines[track.id]
        if time < 0:
            raise LookupError(f"no segment at t={time}")
        m = timeline.segment_at(time)
        if timeline.start(m) != time:
            raise LookupError(f"no segment of {rep_id} starts at t={time}")
        if timeline.end(m) > self._ticks(track, self.publish_ms(now)):
            raise LookupError(f"segment t={time} of {rep_id} is not available yet")
        loops, index = divmod(m, timeline.count)
        decode_time = rep.decode_times[index] + loops * track.loop_ticks
        return restamp(rep.segments[index], base_media_decode_time=decode_time, sequence_number=m + 1)

    # ---- documents ------------------------------------------------------------------------------
    def patch_location(self, publish_ms: int) -> str:
        return f"patch-{publish_ms}.mpp"

    def _patch_location_element(self, publish_ms: int) -> str:
        return f'<PatchLocation ttl="{self.config.patch_ttl_seconds}">{self.patch_location(publish_ms)}</PatchLocation>'

    def _s_elements(self, track: DashTrack, numbers: range) -> str:
        timeline = self._timelines[track.id]
        return "".join(f'<S t="{timeline.start(m)}" d="{timeline.duration(m)}"/>' for m in numbers)

    def mpd(self, now: float) -> bytes:
        """The dynamic MPD published at `now` (floored to the millisecond)."""
        publish = self.publish_ms(now)
        config = self.config
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<MPD xmlns="{MPD_NS}" id="{self.source.name}" type="dynamic"'
            ' profiles="urn:mpeg:dash:profile:isoff-live:2011"'
            f' availabilityStartTime="{iso_ms(self.start_ms)}" publishTime="{iso_ms(publish)}"'
            f' minimumUpdatePeriod="{_duration(config.minimum_update_period_seconds)}"'
            f' timeShiftBufferDepth="{_duration(config.time_shift_buffer_seconds)}"'
            f' suggestedPresentationDelay="{_duration(config.suggested_presentation_delay_seconds)}"'
            f' maxSegmentDuration="PT{self.max_segment_seconds}S" minBufferTime="PT2S">',
            "  <Location>manifest.mpd</Location>",
        ]
        if config.patch_ttl_seconds is not None:
            lines.append("  " + self._patch_location_element(publish))
        lines.append(f'  <Period id="{PERIOD_ID}" start="PT0S">')
        for track in self.source.tracks:
            lines.append(f'    <AdaptationSet{_attrs(track.attributes)} segmentAlignment="true" startWithSAP="1">')
            lines += [f"      {child}" for child in track.children]
            segments = self._s_elements(track, self.window(track, publish))
            for rep in track.representations:
                lines.append(f"      <Representation{_attrs(rep.attributes)}>")
                lines += [f"        {child}" for child in rep.children]
                lines += [
                    f'        <SegmentTemplate timescale="{track.timescale}"'
                    f' initialization="{INIT_TEMPLATE}" media="{MEDIA_TEMPLATE}">',
                    f"          <SegmentTimeline>{segments}</SegmentTimeline>",
                    "        </SegmentTemplate>",
                    "      </Representation>",
                ]
            lines.append("    </AdaptationSet>")
        lines += [
            "  </Period>",
            f'  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="{iso_ms(publish)}"/>',
            "</MPD>",
        ]
        return ("\n".join(lines) + "\n").encode()

    def patch(self, original_ms: int, now: float) -> bytes:
        """The patch from the MPD published at `original_ms` to the one published at `now`.

        Raises PatchError: 404 without patches or before the stream, 425 when no newer MPD exists yet,
        410 once the PatchLocation's ttl (plus a grace) has passed.
        """
        ttl = self.config.patch_ttl_seconds
        publish = self.publish_ms(now)
        if ttl is None:
            raise PatchError(404, "this stream has no MPD patches")
        if original_ms < self.start_ms:
            raise PatchError(404, f"no MPD was published at {original_ms} (before the stream)")
        if original_ms >= publish:
            raise PatchError(425, f"no MPD newer than {original_ms} yet")
        if publish > original_ms + (ttl + PATCH_GRACE_SECONDS) * 1000:
            raise PatchError(410, f"the patch from {original_ms} expired (ttl {ttl} s)")
        ops = [
            f'  <replace sel="/MPD/@publishTime">{iso_ms(publish)}</replace>',
            f'  <replace sel="/MPD/PatchLocation[1]">{self._patch_location_element(publish)}</replace>',
        ]
        for track in self.source.tracks:
            old, new = self.window(track, original_ms), self.window(track, publish)
            removed = sum(1 for m in old if not new or m < new.start)
            added = range(max(new.start, old.stop), new.stop) if old else new
            for rep in track.representations:
                ops += self._rep_ops(track, rep, removed, added)
        ops.append(f'  <replace sel="/MPD/UTCTiming[1]/@value">{iso_ms(publish)}</replace>')
        head = (
            f'<Patch xmlns="{PATCH_NS}" mpdId="{self.source.name}"'
            f' originalPublishTime="{iso_ms(original_ms)}" publishTime="{iso_ms(publish)}">'
        )
        return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, *ops, "</Patch>", ""]).encode()

    def _rep_ops(self, track: DashTrack, rep: DashRepresentation, removed: int, added: range) -> list[str]:
        template = (
            f"/MPD/Period[@id='{PERIOD_ID}']/AdaptationSet[@id='{track.id}']"
            f"/Representation[@id='{rep.id}']/SegmentTemplate"
        )
        ops = [f'  <remove sel="{template}/SegmentTimeline/S[1]"/>'] * removed
        if added:
            ops.append(f'  <add sel="{template}/SegmentTimeline">{self._s_elements(track, added)}</add>')
        ops += [
            f'  <replace sel="{template}/@media">{MEDIA_TEMPLATE}</replace>',
            f'  <replace sel="{template}/@initialization">{INIT_TEMPLATE}</replace>',
        ]
        return ops
