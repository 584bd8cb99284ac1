"""Concurrent streams per user: the pure counting core (in memory, the clock passed in).

A stream is one viewing session (its session id). It is alive while the gateway sees it: session creation,
refreshes and every playlist (or segment) it serves are heartbeats, and a stream not seen for `idle_seconds`
frees its slot (a paused player that stops fetching, a closed tab). Playlists always come through the
gateway, even when a CDN serves the segments, so this needs no player code.

A user with `max_streams` streams alive who starts another: `block_new` refuses the new one; `evict_oldest`
admits it and ends the stream seen least recently, which stays refused (not re-admitted on its next fetch,
which would evict the newcomer in turn) for `evicted_seconds`, the longest a session can live.

`gateway/sessions/stream_redis.py` runs the same rules as one Redis script for several instances; the tests
hold the two to the same cases.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.config_schema import OnLimit


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    max_streams: int  # per user; 0: no limit (nothing is counted)
    on_limit: OnLimit
    idle_seconds: float  # a stream not seen for this long is over
    evicted_seconds: float  # how long an evicted stream stays refused (the sessions' maximum life)

    def __post_init__(self) -> None:
        if self.max_streams < 0 or self.idle_seconds <= 0 or self.evicted_seconds <= 0:
            raise ValueError(
                f"max_streams must be >= 0 and idle/evicted seconds positive, got {self.max_streams}, "
                f"{self.idle_seconds}, {self.evicted_seconds}"
            )


class Outcome(enum.StrEnum):
    ADMITTED = "admitted"
    BLOCKED = "blocked"  # a new stream beyond the limit (block_new)
    EVICTED = "evicted"  # this stream was ended earlier by a newer one (evict_oldest)


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    outcome: Outcome
    user_streams: int  # the user's streams alive after this heartbeat
    evicted: str | None = None  # the stream this heartbeat ended to make room (evict_oldest)


class StreamTable:
    """user -> {stream -> last seen}, and evicted streams -> until when they stay refused."""

    def __init__(self, policy: StreamPolicy) -> None:
        self.policy = policy
        self._users: dict[str, dict[str, float]] = {}
        self._evicted: dict[str, float] = {}
        self._count = 0  # entries across every user: the streams seen within the last idle period or so
        self._next_sweep = 0.0

    def heartbeat(self, user: str, stream: str, now: float) -> StreamVerdict:
        self._sweep(now)
        if self._evicted.get(stream, float("-inf")) > now:
            return StreamVerdict(Outcome.EVICTED, len(self._users.get(user, ())))
        streams = self._users.setdefault(user, {})
        self._forget_idle(streams, now - self.policy.idle_seconds)
        if stream in streams or len(streams) < self.policy.max_streams:
            self._count += stream not in streams
            streams[stream] = now
            return StreamVerdict(Outcome.ADMITTED, len(streams))
        if self.policy.on_limit is OnLimit.BLOCK_NEW:
            return StreamVerdict(Outcome.BLOCKED, len(streams))
        oldest = min(streams, key=streams.__getitem__)
        del streams[oldest]
        self._evicted[oldest] = now + self.policy.evicted_seconds
        streams[stream] = now
        return StreamVerdict(Outcome.ADMITTED, len(streams), evicted=oldest)

    def release(self, user: str, stream: str) -> None:
        """A stream ended on purpose (its session revoked): its slot is free at once."""
        streams = self._users.get(user)
        if streams is not None and streams.pop(stream, None) is not None:
            self._count -= 1

    def active(self) -> int:
        """Streams alive across every user: O(1), for the gauge. A stream gone idle still counts until its
        user's next heartbeat or the next sweep, at most one idle period later."""
        return self._count

    def _forget_idle(self, streams: dict[str, float], horizon: float) -> None:
        for gone in [s for s, seen in streams.items() if seen < horizon]:
            del streams[gone]
            self._count -= 1

    def _sweep(self, now: float) -> None:
        """Forget users with no stream alive and evictions past their time, once per idle period: memory
        follows the streams alive, not every user ever seen."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.policy.idle_seconds
        horizon = now - self.policy.idle_seconds
        for streams in self._users.values():
            self._forget_idle(streams, horizon)
        for user in [u for u, streams in self._users.items() if not streams]:
            del self._users[user]
        for stream in [s for s, until in self._evicted.items() if until <= now]:
            del self._evicted[stream]
