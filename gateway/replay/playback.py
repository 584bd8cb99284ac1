"""Playback: the tracks a player plays (video and alternate audio), their forward buffers, reloads and fetches.

A track reloads its media playlist and fetches every new segment (and the key and init section it needs,
once per URL, as hls.js caches by URI) until its buffer holds `buffer_segments` segments (3: the live
hold-back). Playing consumes the buffer; a stall is the buffer running dry while playing, i.e. no new segment
obtainable for more than `buffer_segments` target durations. Gaps: no new segment for more than two target
durations, or segments that left the live window before they were fetched. Switching renditions keeps the
media sequence number, which assumes MSN-aligned renditions (the simulator's, and most packagers').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

from gateway.replay.client import HttpSide, Reply
from gateway.replay.events import Interval
from gateway.replay.playlist import MediaPlaylist, cross_check, scan_media
from gateway.replay.scenario import PlayerSpec, Scenario
from gateway.replay.session import PlayerSession

EPSILON = 1e-6
MAX_SEGMENTS_PER_ROUND = 12  # a player far behind catches up over several rounds, as a real one would
MAX_REMEMBERED_URLS = 64


@dataclass
class Track:
    kind: str  # video | audio
    url: str  # the playlist URL from the master (its token included)
    rendition: str
    next_msn: int | None = None
    buffer: float = 0.0  # seconds fetched ahead of the playhead
    playlist: MediaPlaylist | None = None
    fetched: dict[str, None] = field(default_factory=dict)  # key and init URLs already fetched (bounded)


class Playback(PlayerSession):
    def __init__(
        self,
        spec: PlayerSpec,
        scenario: Scenario,
        http: HttpSide,
        *,
        base_url: str,
        start_epoch: float,
        clock: Callable[[], float],
        blocking_reload: bool = False,
    ) -> None:
        super().__init__(spec, scenario, http, base_url=base_url, start_epoch=start_epoch, clock=clock)
        self.blocking_reload = blocking_reload
        self.video: Track | None = None
        self.audio: Track | None = None
        self.blocked = False  # inside a blocking (LL-HLS) reload: the simulated clock has to move on
        self.target_duration: float | None = None
        self._played_until: float | None = None
        self._stall: Interval | None = None
        self._last_new_segment: float | None = None
        self._resumed_at: float | None = None
        self._checked: set[str] = set()

    @property
    def tracks(self) -> list[Track]:
        return [track for track in (self.video, self.audio) if track is not None]

    def finish(self, t: float) -> None:
        """Close what is still open at the end of the run."""
        if self._stall is not None:
            self._close_stall(t)

    def _consume(self, t: float) -> None:
        elapsed = 0.0 if self._played_until is None else t - self._played_until
        self._played_until = t
        low = min((track.buffer for track in self.tracks), default=0.0) - elapsed
        for track in self.tracks:
            track.buffer = max(0.0, track.buffer - elapsed)
        if low < -EPSILON and self._stall is None:
            self._stall = Interval("stall", t + low, None, "the buffer ran dry while playing")

    def _close_stall(self, t: float) -> None:
        stall, self._stall = self._stall, None
        assert stall is not None
        stall.end = t
        window = [(at, ok) for at, ok in self.denial_times if at >= stall.start - self._buffer_seconds() - EPSILON]
        stall.expected = bool(window) and all(ok for _, ok in window)
        stall.detail += f"; {'caused by expected denials' if stall.expected else 'unexpected'}"
        self.log.stalls.append(stall)

    def _buffer_seconds(self) -> float:
        return self.scenario.buffer_segments * (self.target_duration or 0.0)

    async def _reload_all(self) -> bool:
        loaded = False
        for track in self.tracks:
            url = track.url
            blocking = self.blocking_reload and track.playlist is not None and track.playlist.can_block_reload
            if blocking and track.playlist is not None:
                url += ("&" if "?" in url else "?") + f"_HLS_msn={track.playlist.last_msn + 1}"
            self.blocked = blocking
            try:
                reply = await self.fetch(url, "media_playlist", track.rendition)
            finally:
                self.blocked = False
            if reply is None:
                continue
            playlist = self._parse(reply, track)
            if playlist is None:
                continue
            loaded = True
            await self._fill(track, playlist)
        return loaded

    def _parse(self, reply: Reply, track: Track) -> MediaPlaylist | None:
        text = reply.body.decode("utf-8", "replace")
        t = self.now()
        try:
            playlist = scan_media(text)
        except ValueError as exc:
            self.note_error(t, "media_playlist", track.rendition, f"unparseable playlist: {exc}")
            return None
        if self.scenario.strict_parse or track.rendition not in self._checked:
            self._checked.add(track.rendition)
            mismatch = cross_check(text, playlist)
            if mismatch:
                self.note_error(t, "media_playlist", track.rendition, f"parser mismatch with m3u8: {mismatch}")
        self.target_duration = playlist.target_duration
        track.playlist = playlist
        return playlist

    async def _fill(self, track: Track, playlist: MediaPlaylist) -> None:
        segments = playlist.segments
        if not segments:
            return
        first = segments[0].msn
        if track.next_msn is None:
            track.next_msn = max(first, playlist.last_msn - self.scenario.buffer_segments + 1)
        elif track.next_msn < first:
            self._skipped(track, first - track.next_msn)
            track.next_msn = first
        goal = self._buffer_seconds()
        for segment in segments[track.next_msn - first :][:MAX_SEGMENTS_PER_ROUND]:
            if track.buffer >= goal - EPSILON:
                break
            for uri, kind in ((segment.map_uri, "init"), (segment.key_uri, "key")):
                if uri is not None and not await self._once(track, urljoin(track.url, uri), kind):
                    return
            if await self.fetch(urljoin(track.url, segment.uri), "segment", track.rendition) is None:
                return
            track.buffer += segment.duration
            track.next_msn = segment.msn + 1
            self._new_segment()
        if self.blocking_reload and playlist.last_part:
            await self._once(track, urljoin(track.url, playlist.last_part), "part")

    def _skipped(self, track: Track, count: int) -> None:
        """Segments that left the window before they were fetched (merged while it keeps happening)."""
        t, gaps = self.now(), self.log.gaps
        after_pause = self._resumed_at is not None and t - self._resumed_at <= 2 * (self.target_duration or 0)
        last = gaps[-1] if gaps else None
        if (
            last is not None
            and last.kind == "skipped"
            and last.end is not None
            and t - last.end <= 3 * (self.target_duration or 0)
        ):
            last.end, last.count = t, last.count + count
        else:
            gaps.append(Interval("skipped", t, t, "", expected=after_pause, count=count))
        why = " (resumed after the DVR window had moved past the pause)" if gaps[-1].expected else ""
        gaps[-1].detail = f"{gaps[-1].count} segments left the window before they were fetched{why}"

    async def _once(self, track: Track, url: str, kind: str) -> bool:
        """Fetch a key/init/part URL unless this exact URL (token included) was fetched: hls.js caches by URI."""
        if url in track.fetched:
            return True
        if await self.fetch(url, kind, track.rendition) is None:
            return False
        track.fetched[url] = None
        while len(track.fetched) > MAX_REMEMBERED_URLS:
            del track.fetched[next(iter(track.fetched))]
        return True

    def _new_segment(self) -> None:
        t = self.now()
        limit = 2 * (self.target_duration or 0.0)
        if self._last_new_segment is not None and t - self._last_new_segment > limit + EPSILON:
            self.log.gaps.append(Interval("no_segment", self._last_new_segment, t, "no new segment for long"))
        self._last_new_segment = t
        if self._stall is not None and min(tr.buffer for tr in self.tracks) > EPSILON:
            self._close_stall(t)
