"""A pure, clock-injected sliding-window live HLS origin looping a VOD title.

Everything is a function of `now` (epoch seconds, passed in): nothing sleeps or reads a clock, so
hour 3 of a stream renders as directly as second 3. Live segment `m` carries VOD segment
`m % count`; an EXT-X-DISCONTINUITY precedes every loop wrap (the timestamps restart there).

Resources, relative to `/live/<stream>/`:
  `<rendition>/index.m3u8`           media playlist (`media_playlist`)
  `<rendition>/seg<m>.ts`            segment m (`segment_bytes`)
  `<rendition>/seg<m>.part<p>.ts`    LL-HLS part p of segment m (`part_bytes`)
  `keys/<n>.key`                     AES-128 key n (`key_bytes`), URI `../keys/<n>.key` in playlists

Encryption is real: segment m is the clear VOD segment AES-128-CBC encrypted with key
`key_index(m)` and the implicit IV (m as 128 bits, RFC 8216 §5.2), so no IV attribute is needed.
A part is its own resource and its own CBC run with its parent segment's key and IV (what hls.js
expects: it decrypts and unpads each part separately). Parts are clear byte slices of the segment
cut on 188-byte TS packet boundaries, equal in packet count; their concatenation is the segment, but
the media inside a part only approximately matches its advertised time slice.
"""

from __future__ import annotations

import datetime
import math
from typing import Literal

from gateway.dev.live_origin.config import LiveConfig, LowLatencyConfig
from gateway.dev.live_origin.crypto import derive_key, encrypt_aes128, sequence_iv
from gateway.dev.live_origin.source import TS_PACKET, SourceRendition, VodSource
from gateway.dev.live_origin.timeline import MICROS, Edge, Timeline, seconds_to_micros

__all__ = ["DirectiveError", "LiveConfig", "LiveStream", "LowLatencyConfig", "PlaylistNotReady", "Skip"]

Skip = bool | Literal["v2"]
PART_HISTORY_TARGET_DURATIONS = 3  # parts older than this are dropped from playlists (rfc8216bis)


class PlaylistNotReady(Exception):
    """A blocking reload asked for a segment/part that does not exist yet at `now`."""

    def __init__(self, msn: int, part: int | None, available_at: float) -> None:
        super().__init__(f"MSN {msn} part {part} available at {available_at:.6f}")
        self.msn, self.part, self.available_at = msn, part, available_at


class DirectiveError(ValueError):
    """A delivery directive the server must refuse (HTTP 400, rfc8216bis §6.2.5.2)."""


class LiveStream:
    """The stream's state at any instant; see the module docstring for the resource layout."""

    def __init__(self, config: LiveConfig, source: VodSource) -> None:
        self.config, self.source = config, source
        self._renditions = {r.name: r for r in source.renditions}
        reference = source.rendition(source.reference).durations
        ll = config.ll_hls
        parts = tuple(max(1, math.ceil(d / ll.part_target_seconds - 1e-9)) if ll else 1 for d in reference)
        self.timeline = Timeline(tuple(seconds_to_micros(d) for d in reference), parts)
        longest = max(int(d + 0.5) for r in source.renditions for d in r.durations)
        self.target_duration = config.target_duration or max(1, longest)
        if self.target_duration < longest:
            raise ValueError(f"target_duration {self.target_duration} < longest segment (rounded) {longest}")
        longest_part = max(d / parts[i] for r in source.renditions for i, d in enumerate(r.durations))
        self.part_target = max(ll.part_target_seconds if ll else 0.0, math.ceil(longest_part * 1000 - 1e-6) / 1000)
        skip_floor = 6 * self.target_duration
        self.can_skip_until = (ll.can_skip_until_seconds or skip_floor) if ll else 0.0
        if ll and self.can_skip_until < skip_floor:
            raise ValueError(f"can_skip_until_seconds {self.can_skip_until} < 6 x target = {skip_floor}")

    # ---- time ---------------------------------------------------------------------------------
    def _micros(self, now: float) -> int:
        return seconds_to_micros(now - self.config.start_time)

    def edge(self, now: float) -> Edge:
        return self.timeline.edge(self._micros(now))

    def last_part(self, now: float) -> tuple[int, int] | None:
        """(LAST-MSN, LAST-PART) of every rendition at `now`; None before the first part exists."""
        edge = self.edge(now)
        if edge.parts_done:
            return edge.in_progress, edge.parts_done - 1
        if edge.last_complete < 0:
            return None
        return edge.last_complete, self.timeline.parts_in(edge.last_complete) - 1

    def available_at(self, msn: int, part: int | None = None) -> float:
        """Epoch seconds at which segment `msn` (or its part `part`) becomes available."""
        end = self.timeline.end(msn) if part is None else self.timeline.part_end(msn, part)
        return self.config.start_time + end / MICROS

    def is_available(self, msn: int, part: int | None, now: float) -> bool:
        return self.timeline.is_available(msn, part, self._micros(now))

    # ---- schedules ----------------------------------------------------------------------------
    def is_discontinuity(self, msn: int) -> bool:
        every = self.config.discontinuity_every
        return msn > 0 and (msn % self.timeline.count == 0 or (every is not None and msn % every == 0))

    def discontinuities_through(self, msn: int) -> int:
        """How many of segments 1..msn start with EXT-X-DISCONTINUITY (O(1))."""
        if msn < 1:
            return 0
        count, every = self.timeline.count, self.config.discontinuity_every
        total = msn // count
        if every is not None:
            total += msn // every - msn // math.lcm(count, every)
        return total

    def key_index(self, msn: int) -> int:
        every = self.config.key_rotation_every
        return msn // every if every else 0

    def key_bytes(self, n: int) -> bytes:
        return derive_key(self.config.key_seed, n)

    def key_published(self, n: int, now: float) -> bool:
        """Key n is served once the segment in production (or an earlier one) uses it."""
        every = self.config.key_rotation_every
        if not self.config.encrypt or n < 0 or (every is None and n != 0):
            return False
        return n * (every or 0) <= self.edge(now).in_progress

    # ---- media --------------------------------------------------------------------------------
    def rendition(self, name: str) -> SourceRendition:
        try:
            return self._renditions[name]
        except KeyError:
            raise KeyError(f"unknown rendition {name!r}") from None

    def segment_bytes(self, rendition: str, msn: int) -> bytes:
        clear = self.rendition(rendition).clear_segments[msn % self.timeline.count]
        return self._protect(clear, msn)

    def part_bytes(self, rendition: str, msn: int, part: int) -> bytes:
        parts = self.timeline.parts_in(msn)
        if not 0 <= part < parts:
            raise ValueError(f"part {part} out of range: segment {msn} has {parts} parts")
        clear = self.rendition(rendition).clear_segments[msn % self.timeline.count]
        packets = len(clear) // TS_PACKET
        low, high = (part * packets // parts) * TS_PACKET, ((part + 1) * packets // parts) * TS_PACKET
        return self._protect(clear[low:high], msn)

    def _protect(self, clear: bytes, msn: int) -> bytes:
        if msn < 0:
            raise ValueError(f"media sequence number must be >= 0, got {msn}")
        if not self.config.encrypt:
            return clear
        return encrypt_aes128(clear, self.key_bytes(self.key_index(msn)), sequence_iv(msn))

    # ---- playlists ----------------------------------------------------------------------------
    def master_playlist(self) -> bytes:
        return ("\n".join(self.source.master_lines) + "\n").encode()

    def media_playlist(
        self, rendition: str, now: float, *, msn: int | None = None, part: int | None = None, skip: Skip = False
    ) -> bytes:
        """The media playlist of `rendition` at `now`.

        `msn`/`part` are a blocking-reload target (`_HLS_msn`/`_HLS_part`): if it does not exist yet
        this raises `PlaylistNotReady` carrying the instant it will (the I/O layer waits and calls
        again); a target beyond the last MSN + 2 raises `DirectiveError`. `skip` (`_HLS_skip=YES` or
        `"v2"`) yields a delta update: segments older than CAN-SKIP-UNTIL become one EXT-X-SKIP.
        Without LL-HLS no delivery directive is advertised, so all three are ignored.
        """
        source = self.rendition(rendition)
        t = self._micros(now)
        edge = self.timeline.edge(t)
        ll = self.config.ll_hls is not None
        if ll and (msn is not None or part is not None):
            self._check_target(edge, t, msn, part)
        first = self._first_in_window(edge.last_complete)
        skipped = self._skippable(first, edge.last_complete) if ll and skip else 0
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{9 if ll else 3}", f"#EXT-X-TARGETDURATION:{self.target_duration}"]
        if ll:
            lines += [
                f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={self.can_skip_until:.1f},"
                f"CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK={3 * self.part_target:.3f}",
                f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}",
            ]
        lines += [
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuities_through(first - 1)}",
        ]
        if skipped:
            removed = ',RECENTLY-REMOVED-DATERANGES=""' if skip == "v2" else ""
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}{removed}")
        parts_from = t - PART_HISTORY_TARGET_DURATIONS * self.target_duration * MICROS
        for m in range(first + skipped, edge.last_complete + 1):
            lines += self._segment_tags(m, leading=m == first + skipped)
            if ll and self.timeline.start(m) >= parts_from:
                lines += self._part_lines(source, m, self.timeline.parts_in(m))
            lines += [f"#EXTINF:{self._duration(source, m):.6f},", f"seg{m}.ts"]
        if ll:
            m = edge.in_progress
            lines += self._segment_tags(m, leading=edge.last_complete < first + skipped)
            lines += self._part_lines(source, m, edge.parts_done)
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg{m}.part{edge.parts_done}.ts"')
            lines += self._rendition_reports(rendition, now)
        return ("\n".join(lines) + "\n").encode()

    def _check_target(self, edge: Edge, t: int, msn: int | None, part: int | None) -> None:
        if msn is None or msn < 0 or (part is not None and part < 0):
            raise DirectiveError(f"bad blocking-reload target _HLS_msn={msn} _HLS_part={part}")
        if part is not None and part >= self.timeline.parts_in(msn):
            msn, part = msn + 1, 0  # past the last part of M: the first part of M + 1
        last_msn = edge.in_progress if edge.parts_done else edge.last_complete
        if msn > last_msn + 2:
            raise DirectiveError(f"_HLS_msn={msn} is more than 2 beyond the last MSN {last_msn}")
        if not self.timeline.is_available(msn, part, t):
            raise PlaylistNotReady(msn, part, self.available_at(msn, part))

    def _first_in_window(self, last: int) -> int:
        first = last - self.config.window_segments + 1
        if self.config.dvr_window_seconds > 0 and last >= 0:
            dvr_start = self.timeline.end(last) - seconds_to_micros(self.config.dvr_window_seconds)
            first = min(first, self.timeline.first_starting_at_or_after(dvr_start))
        return max(0, first)

    def _skippable(self, first: int, last: int) -> int:
        """Leading segments that ended at least CAN-SKIP-UNTIL before the last segment's end."""
        if last < 0:
            return 0
        boundary = self.timeline.end(last) - seconds_to_micros(self.can_skip_until)
        return max(0, self.timeline.segment_at(boundary) - first) if boundary > 0 else 0

    def _duration(self, source: SourceRendition, msn: int) -> float:
        return source.durations[msn % self.timeline.count]

    def _segment_tags(self, msn: int, *, leading: bool) -> list[str]:
        """Tags before segment `msn`; the leading segment restates the key and date."""
        discontinuity = self.is_discontinuity(msn)
        lines = ["#EXT-X-DISCONTINUITY"] if discontinuity else []
        every = self.config.key_rotation_every
        if self.config.encrypt and (leading or (every is not None and msn % every == 0)):
            lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="../keys/{self.key_index(msn)}.key"')
        if self.config.program_date_time and (leading or discontinuity):
            when = self.config.start_time + self.timeline.start(msn) / MICROS
            stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(timespec="milliseconds")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp.replace('+00:00', 'Z')}")
        return lines

    def _part_lines(self, source: SourceRendition, msn: int, count: int) -> list[str]:
        duration = self._duration(source, msn) / self.timeline.parts_in(msn)
        return [
            f'#EXT-X-PART:DURATION={duration:.6f},URI="seg{msn}.part{p}.ts"' + (",INDEPENDENT=YES" if p == 0 else "")
            for p in range(count)
        ]

    def _rendition_reports(self, rendition: str, now: float) -> list[str]:
        last = self.last_part(now)
        if last is None:
            return []
        return [
            f'#EXT-X-RENDITION-REPORT:URI="../{name}/index.m3u8",LAST-MSN={last[0]},LAST-PART={last[1]}'
            for name in self._renditions
            if name != rendition
        ]
