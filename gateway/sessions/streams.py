"""The stream watcher: what the edge and the session API call on every heartbeat of a viewing session.

    session created · refreshed · any playlist fetched ──▶ heartbeat(grant, client address, now)
        ──▶ store (memory, or Redis for several instances): the user's streams, the session's networks
        ──▶ a new stream over `[sessions] max_streams`: `stream_limit` (403), or the oldest evicted
        ──▶ a session seen from more than `[sharing] max_networks` networks: metric, log event, revoke

Playlists always come through the gateway, even when a CDN serves the segments (`cdn = …`), so every
playlist fetch is a heartbeat and this needs no player code. A live player reloads its playlists every few
seconds. A VOD player loads them once: the gateway then sees it through the segments it serves itself
(also heartbeats) and through token refreshes (the demo page refreshes at 75% of `token_ttl_seconds`), so
behind a CDN `stream_idle_seconds` must outlast the refresh interval (the default, 300 s, does).
"""

from __future__ import annotations

import json
import logging
from typing import Final

from gateway.config import Settings
from gateway.errors import Denial, TokenDenied
from gateway.sessions.revocations import RevocationStore
from gateway.sessions.sharing import SharingPolicy, SharingVerdict
from gateway.sessions.stream_metrics import SHARING_DETECTED, STREAM_LIMIT_REFUSALS, STREAMS_ACTIVE
from gateway.sessions.stream_store import MemoryStreams, StreamStore
from gateway.sessions.stream_table import Outcome, StreamPolicy
from gateway.tokens.grant import Grant, IPAddress

log = logging.getLogger("gateway.sessions.streams")

# With Redis, a stream already admitted asks Redis at most this often per instance (and network): a heartbeat
# costs a round trip, and a player fetches two or three playlists every few seconds. An eviction or a
# revocation on another instance is noticed within this long.
MAX_HEARTBEAT_SECONDS: Final = 5.0
MAX_CONFIRMED: Final = 100_000  # (stream, network) pairs remembered for the above
# Media tokens (segment URLs) carry the session but not the user, to stay short: the user of a session is
# remembered from its other heartbeats (creation, playlists, refreshes) on this instance.
MAX_OWNERS: Final = 100_000


class StreamWatch:
    def __init__(
        self,
        store: StreamStore,
        streams: StreamPolicy,
        sharing: SharingPolicy,
        revocations: RevocationStore,
        *,
        heartbeat_seconds: float = 0.0,
        leeway_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.streams = streams
        self.sharing = sharing
        self.revocations = revocations
        self.heartbeat_seconds = heartbeat_seconds
        self.leeway_seconds = leeway_seconds  # a revocation outlives the session's cap by the verifiers' leeway
        self.enabled = streams.max_streams > 0 or sharing.max_networks > 0
        self._confirmed: dict[tuple[str, str | None], float] = {}
        self._owners: dict[str, str] = {}  # session -> user

    async def heartbeat(self, grant: Grant, client_ip: IPAddress | None, now: float) -> None:
        """Count a sign of life of `grant`'s session; raises `stream_limit` or `revoked` (sharing) to refuse it.
        Cheap when nothing changes: in memory a few dict operations; with Redis one round trip per
        `heartbeat_seconds` per stream and network."""
        session = grant.session_id
        if not self.enabled or session is None:
            return
        user = self._owner(session, grant.user_id) if self.streams.max_streams else None
        network = self.sharing.network_of(client_ip) if self.sharing.max_networks and client_ip else None
        if user is None and network is None:
            return
        key = (session, network)
        if now - self._confirmed.get(key, float("-inf")) < self.heartbeat_seconds:
            return
        seen = await self.store.observe(user=user, stream=session, network=network, now=now)
        if seen.sharing is not None and seen.sharing.detected:
            self._shared(grant, network, seen.sharing, now)
        verdict = seen.stream
        if verdict is not None:
            STREAMS_ACTIVE.set(seen.active_streams)
            if verdict.outcome is Outcome.BLOCKED:
                STREAM_LIMIT_REFUSALS.labels(outcome="blocked").inc()
                raise TokenDenied(
                    Denial.STREAM_LIMIT,
                    f"this account already has {verdict.user_streams} streams playing (max_streams = "
                    f"{self.streams.max_streams}); stop one, or wait {self.streams.idle_seconds:g} s after it stopped",
                    {"max_streams": self.streams.max_streams},
                )
            if verdict.outcome is Outcome.EVICTED:
                self._confirmed.pop(key, None)
                raise TokenDenied(
                    Denial.STREAM_LIMIT,
                    f"this stream was ended: the account started another beyond max_streams = "
                    f"{self.streams.max_streams}; start a new session to watch here",
                    {"max_streams": self.streams.max_streams},
                )
            if verdict.evicted is not None:
                STREAM_LIMIT_REFUSALS.labels(outcome="evicted").inc()
                log.info("streams: session %s evicted to admit %s (max_streams reached)", verdict.evicted, session)
        self._remember(key, now)

    def _owner(self, session: str, user: str | None) -> str | None:
        if user is None:
            return self._owners.get(session)
        if self._owners.get(session) != user:
            if len(self._owners) >= MAX_OWNERS:
                self._owners.clear()  # forgetting only makes some segment requests no heartbeat
            self._owners[session] = user
        return user

    async def release(self, grant: Grant) -> None:
        """The session was revoked: its slot is free at once (not after the idle grace)."""
        if self.streams.max_streams and grant.user_id is not None and grant.session_id is not None:
            await self.store.release(grant.user_id, grant.session_id)

    async def aclose(self) -> None:
        await self.store.aclose()

    def _shared(self, grant: Grant, network: str | None, sharing: SharingVerdict, now: float) -> None:
        assert grant.session_id is not None
        revoke = self.sharing.revoke
        SHARING_DETECTED.labels(revoked="true" if revoke else "false").inc()
        event = {
            "event": "sharing_detected",
            "session": grant.session_id,
            "user": grant.user_id,
            "networks": sharing.networks,
            "max_networks": self.sharing.max_networks,
            "window_seconds": self.sharing.window_seconds,
            "latest_network": network,
            "revoked": revoke,
        }
        log.warning("sharing_detected %s", json.dumps(event, sort_keys=True), extra={"event": event})
        if not revoke:
            return
        # Through the revocation store: with Redis, every instance refuses the session within its refresh.
        ends = grant.session_ends_at if grant.session_ends_at is not None else grant.expires_at
        self.revocations.revoke(grant.session_id, ends + self.leeway_seconds)
        raise TokenDenied(
            Denial.REVOKED,
            f"session {grant.session_id} revoked: seen from {sharing.networks} client networks within "
            f"{self.sharing.window_seconds:g} s (max_networks = {self.sharing.max_networks})",
            {"session": grant.session_id},
        )

    def _remember(self, key: tuple[str, str | None], now: float) -> None:
        if not self.heartbeat_seconds:
            return
        if len(self._confirmed) >= MAX_CONFIRMED:
            horizon = now - self.heartbeat_seconds
            self._confirmed = {k: at for k, at in self._confirmed.items() if at >= horizon}
            if len(self._confirmed) >= MAX_CONFIRMED:
                self._confirmed.clear()  # all recent: forgetting only costs extra round trips
        self._confirmed[key] = now


def build_stream_watch(settings: Settings, revocations: RevocationStore) -> StreamWatch:
    """The watcher `settings` ask for: in memory, or in Redis when `redis_url` is set."""
    sessions = settings.sessions
    streams = StreamPolicy(
        max_streams=sessions.max_streams,
        on_limit=sessions.on_limit,
        idle_seconds=sessions.stream_idle_seconds,
        evicted_seconds=sessions.max_life_seconds + settings.leeway_seconds,
    )
    sharing = settings.sharing
    store: StreamStore
    heartbeat_seconds = 0.0
    if settings.redis_url and (streams.max_streams or sharing.max_networks):
        from gateway.sessions.stream_redis import RedisStreams

        store = RedisStreams(settings.redis_url, streams, sharing)
        heartbeat_seconds = min(streams.idle_seconds / 4, MAX_HEARTBEAT_SECONDS)
    else:
        store = MemoryStreams(streams, sharing)
    return StreamWatch(
        store,
        streams,
        sharing,
        revocations,
        heartbeat_seconds=heartbeat_seconds,
        leeway_seconds=settings.leeway_seconds,
    )
