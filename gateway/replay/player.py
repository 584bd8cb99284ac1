"""A simulated HLS player: an async state machine driven by `tick()` once per reload interval.

Per tick: scheduled behaviours (pause, seek back, client address change, revoke), buffer accounting (a
stall is the buffer running dry while playing), renewal ahead of expiry (refresh strategy), ABR switches
(to the variant URL from the master, whose playlist token must still work hours later), then a reload of
every media playlist it plays (video and alternate audio) and a fetch of every new segment, key and init
section up to its forward buffer. Every request is recorded with its token's kind and expiry.
Session handling (create, refresh, revoke, denial recovery) lives in `PlayerSession` (session.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

from gateway.replay.client import HttpSide
from gateway.replay.playback import EPSILON, Playback, Track
from gateway.replay.playlist import Variant, parse_master, rendition_name
from gateway.replay.scenario import IpChange, Pause, PlayerSpec, Revoke, Scenario, SeekBack
from gateway.replay.session import PlayerStopped, Rebuilt


@dataclass(frozen=True)
class _Resume:
    """The end of a pause (scheduled when the pause starts)."""

    at: float


ScheduledEvent = Pause | SeekBack | IpChange | Revoke | _Resume


class Player(Playback):
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
        max_requests: int = 1_000_000,
    ) -> None:
        super().__init__(
            spec,
            scenario,
            http,
            base_url=base_url,
            start_epoch=start_epoch,
            clock=clock,
            blocking_reload=blocking_reload,
        )
        self.max_requests = max_requests
        self.variants: list[Variant] = []
        self.variant_index = 0
        behaviours: list[Pause | SeekBack | IpChange | Revoke] = [*spec.pauses, *spec.seeks, *spec.ip_changes]
        behaviours += spec.revokes
        self._schedule: list[tuple[float, int, ScheduledEvent]] = sorted(
            ((event.at, i, event) for i, event in enumerate(behaviours)), key=lambda item: (item[0], item[1])
        )
        self._resume_live = True
        self._last_switch = 0.0
        self._direction = 1
        self._failed_rounds = 0

    # ---- the tick -------------------------------------------------------------------------------------
    async def tick(self) -> None:
        if self.state in ("ended", "stopped", "failed"):
            return
        t = self.now()
        try:
            if self.log.requests >= self.max_requests:
                raise PlayerStopped("request limit reached", expected=True, state="ended")
            await self._due_events(t)
            if self.state == "paused":
                return
            if self.state == "new":
                await self.create_session(t, "start")
                await self.load_master(t)
                self.state = "playing"
                self._played_until = t
            self._consume(t)
            await self.renew_ahead(t)
            if self._abr_due(t):
                self._switch(t)
            try:
                loaded = await self._reload_all()
            except Rebuilt:
                loaded = await self._reload_all()  # the session was re-created: once more, with its URLs
            self._failed_rounds = 0 if loaded else self._failed_rounds + 1
            if self._failed_rounds >= self.scenario.give_up_after_failed_ticks:
                raise PlayerStopped(f"no playlist loaded in {self._failed_rounds} rounds", expected=False)
        except PlayerStopped as stop:
            self.stop(self.now(), stop)
            self.finish(self.now())
        except Rebuilt:
            pass  # a second re-creation in one tick: carry on next tick
        except Exception as exc:  # a bug (ours or an answer we cannot handle): reported, never a crashed run
            self.state, self.stop_reason = "failed", f"crashed: {exc!r}"
            self.log.event(self.now(), "stop", self.stop_reason)
            self.finish(self.now())

    def summary(self) -> dict[str, object]:
        log = self.log
        return {
            "player": self.spec.name,
            "renewal": self.spec.renewal,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "requests": log.requests,
            "renewals": len(log.renewals),
            "refreshes": self.refreshes,
            "sessions": self.sessions,
            "renditions_played": sorted({name for _, name in log.renditions}),
            "audio_rendition": self.audio.rendition if self.audio else None,
            "switches": sum(1 for e in log.events if e.type == "switch"),
            "denials": sum(log.denial_counts.values()),
            "unexpected_denials": log.unexpected_denials,
            "errors": log.error_total,
            "stalls": len(log.stalls),
            "gaps": len(log.gaps),
            "tokens_used": len(log.tokens),
        }

    # ---- master and tracks ------------------------------------------------------------------------------
    async def load_master(self, t: float) -> None:
        assert self.session is not None
        url = urljoin(self.base_url, self.session.playback_url)
        reply = await self.fetch(url, "master", None)
        if reply is None:
            raise PlayerStopped("the master playlist could not be loaded", expected=self.last_denial_expected)
        current = self.variants[self.variant_index].name if self.variants else None
        self.variants = parse_master(reply.body.decode("utf-8", "replace"), url)
        names = [v.name for v in self.variants]
        self.variant_index = names.index(current) if current in names else self.spec.start_variant % len(names)
        self._set_tracks(t)

    def _set_tracks(self, t: float) -> None:
        variant = self.variants[self.variant_index]
        self.video = self._track("video", variant.url, self.video)
        self.audio = self._track("audio", variant.audio_url, self.audio) if self.spec.audio else None
        self.log.renditions.append((t, variant.name))

    @staticmethod
    def _track(kind: str, url: str | None, old: Track | None) -> Track | None:
        if url is None:
            return None
        track = Track(kind, url, rendition_name(url))
        if old is not None:  # same position and buffer: a switch or a new session continues playback
            track.next_msn, track.buffer, track.playlist = old.next_msn, old.buffer, old.playlist
        return track

    def _abr_due(self, t: float) -> bool:
        every = self.spec.abr_every_seconds
        return bool(every) and len(self.variants) > 1 and t - self._last_switch >= (every or 0)

    def _switch(self, t: float) -> None:
        if not 0 <= self.variant_index + self._direction < len(self.variants):
            self._direction = -self._direction
        before = self.variants[self.variant_index].name
        self.variant_index += self._direction
        self._last_switch = t
        self._set_tracks(t)
        self.log.event(t, "switch", f"{before} -> {self.variants[self.variant_index].name}")

    # ---- scheduled behaviours -------------------------------------------------------------------------------
    async def _due_events(self, t: float) -> None:
        while self._schedule and self._schedule[0][0] <= t + EPSILON and self.state != "new":
            at, order, event = self._schedule.pop(0)
            if isinstance(event, Pause) and self.state == "playing":
                self.state, self._resume_live = "paused", event.resume == "live"
                self._schedule.append((at + event.duration, order, _Resume(at + event.duration)))
                self._schedule.sort(key=lambda item: (item[0], item[1]))
                self.log.event(t, "pause", f"for {event.duration:g} s, resume at the {event.resume} position")
            elif isinstance(event, _Resume) and self.state == "paused":
                self._resume(t)
            elif isinstance(event, SeekBack):
                self._seek(t, event.by)
            elif isinstance(event, IpChange):
                self.change_ip(t, event)
            elif isinstance(event, Revoke):
                await self.revoke(t, event.expected)

    def _resume(self, t: float) -> None:
        self.state, self._played_until, self._last_new_segment, self._resumed_at = "playing", t, t, t
        for track in self.tracks:
            if self._resume_live:
                track.next_msn, track.buffer = None, 0.0
        self.log.event(t, "resume", "at the live edge" if self._resume_live else "where playback stopped")

    def _seek(self, t: float, by: float) -> None:
        for track in self.tracks:
            if track.playlist is not None and track.playlist.segments:
                track.next_msn, track.buffer = track.playlist.msn_behind_edge(by), 0.0
        self._played_until = t
        self.log.event(t, "seek", f"{by:g} s behind the live edge")
