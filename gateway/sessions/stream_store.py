"""Where stream heartbeats are counted: this process's memory, or Redis shared by every instance
(`gateway/sessions/stream_redis.py`). One interface, so the watcher (gateway/sessions/streams.py) does not
care which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.sessions.sharing import NetworkSightings, SharingPolicy, SharingVerdict
from gateway.sessions.stream_table import StreamPolicy, StreamTable, StreamVerdict


@dataclass(frozen=True, slots=True)
class Observation:
    """What one heartbeat found: the stream verdict (None: not counted) and the sharing verdict (None: off)."""

    stream: StreamVerdict | None
    sharing: SharingVerdict | None
    active_streams: int  # every user's streams alive (this process's, or the shared total with Redis)


class StreamStore(Protocol):
    async def observe(self, *, user: str | None, stream: str, network: str | None, now: float) -> Observation:
        """Count a heartbeat of `stream` (of `user`, if the limit applies) seen from `network` (if sharing is on)."""
        ...

    async def release(self, user: str, stream: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStreams:
    """The single-process default: the pure cores, as they are."""

    def __init__(self, streams: StreamPolicy, sharing: SharingPolicy) -> None:
        self._table = StreamTable(streams)
        self._sightings = NetworkSightings(sharing)

    async def observe(self, *, user: str | None, stream: str, network: str | None, now: float) -> Observation:
        sharing = None if network is None else self._sightings.sighting(stream, network, now)
        verdict = None if user is None else self._table.heartbeat(user, stream, now)
        return Observation(verdict, sharing, self._table.active())

    async def release(self, user: str, stream: str) -> None:
        self._table.release(user, stream)

    async def aclose(self) -> None:
        return None
