"""Revoked viewing sessions. In memory for the single-process default; shared via Redis when configured.

Tokens carry everything else, so this is the only state instances must share. An entry lives until the
session's hard cap, after which every token of that session is refused anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("gateway.sessions.revocations")


class RevocationStore(Protocol):
    def revoke(self, session_id: str, until: float) -> None: ...

    def is_revoked(self, session_id: str, now: float) -> bool: ...

    def close(self) -> None:
        """Release what the store holds (connections, threads); the app calls it on shutdown."""
        ...


class MemoryRevocations:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def revoke(self, session_id: str, until: float) -> None:
        self._until[session_id] = max(until, self._until.get(session_id, 0.0))

    def is_revoked(self, session_id: str, now: float) -> bool:
        until = self._until.get(session_id)
        if until is None:
            return False
        if now > until:
            del self._until[session_id]  # past the session's cap: its tokens are dead anyway
            return False
        return True

    def close(self) -> None:
        return None  # nothing held outside this process


class RedisRevocations:
    """Revocations shared by every gateway instance through Redis (a sorted set scored by expiry).

    `revoke` writes through to Redis at once; `is_revoked` reads a local mirror (a dict lookup on the hot
    path) that a background thread refreshes every `refresh_seconds`, so another instance learns of a
    revocation within that interval. If Redis is unreachable the mirror keeps its last state and the
    failure is logged; revocations made meanwhile still apply on the instance that made them.
    """

    def __init__(self, url: str, *, key: str = "gateway:revoked", refresh_seconds: float = 1.0) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._key = key
        self._refresh_seconds = refresh_seconds
        self._mirror: dict[str, float] = {}
        self._local: dict[str, float] = {}  # made here: kept even if Redis missed them
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, name="revocations-refresh", daemon=True)
        self.refresh(time.time())
        self._thread.start()

    def revoke(self, session_id: str, until: float) -> None:
        import redis

        self._local[session_id] = max(until, self._local.get(session_id, 0.0))
        self._mirror[session_id] = max(until, self._mirror.get(session_id, 0.0))
        try:
            self._redis.zadd(self._key, {session_id: until}, gt=True)
        except redis.RedisError as exc:
            log.warning(
                "revocations: Redis write failed (%s); the revocation holds on this instance", type(exc).__name__
            )

    def is_revoked(self, session_id: str, now: float) -> bool:
        until = self._mirror.get(session_id)
        return until is not None and now <= until

    def refresh(self, now: float) -> None:
        """Drop entries past their session's cap, then mirror the rest."""
        pipe = self._redis.pipeline()
        pipe.zremrangebyscore(self._key, "-inf", f"({now}")
        pipe.zrange(self._key, 0, -1, withscores=True)
        _, entries = pipe.execute()
        self._local = {sid: until for sid, until in self._local.items() if until >= now}
        self._mirror = {member.decode(): float(score) for member, score in entries} | self._local

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._redis.close()

    def _refresh_loop(self) -> None:
        import redis

        while not self._stop.wait(self._refresh_seconds):
            try:
                self.refresh(time.time())
            except redis.RedisError as exc:
                log.warning("revocations: Redis refresh failed (%s); keeping the last known set", type(exc).__name__)
