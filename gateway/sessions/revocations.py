"""Revoked viewing sessions. In memory for the single-process default; shared via Redis when configured.

Tokens carry everything else, so this is the only state instances must share. An entry lives until the
session's hard cap, after which every token of that session is refused anyway. Both stores are bounded by
`max_entries` (default `MAX_ENTRIES`): revoking needs a valid session token, so growth is tied to real
sessions, but an entitled client can open and revoke sessions in a loop, and memory must not follow it.
"""

from __future__ import annotations

import heapq
import logging
import operator
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("gateway.sessions.revocations")

MAX_ENTRIES: Final = 100_000  # live revocations kept per store (and in the Redis set); ~200 bytes each in Python
# Past the limit, entries are dropped down to this share of it, so the O(n) pass that picks them runs once per
# tenth of the limit rather than on every revocation.
EVICT_TO: Final = 0.9
WRITE_BATCH: Final = 1_000  # entries per Redis write: one script call stays well under a millisecond of Redis time
TRIM_BATCH: Final = 1_000  # expired entries removed per script call (Redis runs scripts atomically: keep them short)
SOCKET_TIMEOUT_SECONDS: Final = 2.0
# How long the lifespan waits for the first sync before serving: Redis answers in milliseconds or fails at
# once (refused), so this only bounds a hung Redis to one socket timeout.
FIRST_SYNC_WAIT_SECONDS: Final = SOCKET_TIMEOUT_SECONDS + 1.0
LIMIT_LOG_SECONDS: Final = 60.0


class RevocationStore(Protocol):
    def revoke(self, session_id: str, until: float) -> None: ...

    def is_revoked(self, session_id: str, now: float) -> bool: ...

    def close(self) -> None:
        """Release what the store holds (connections, threads); the app calls it on shutdown."""
        ...


class _LimitNotice:
    """Says that a limit was hit: at once the first time, then at most once a minute with the count since."""

    def __init__(self, what: str, max_entries: int) -> None:
        self._what = what
        self._max_entries = max_entries
        self._dropped = 0
        self._last: float | None = None

    def dropped(self, count: int) -> None:
        self._dropped += count
        now = time.monotonic()
        if self._last is not None and now - self._last < LIMIT_LOG_SECONDS:
            return
        log.warning(
            "revocations: %s hit its limit of max_entries=%d live revocations; dropped %d (%s), those whose "
            "sessions end soonest. Raise the limit if this load is real, or look for a client revoking sessions "
            "in bulk",
            self._what,
            self._max_entries,
            self._dropped,
            "so far" if self._last is None else f"in the last {now - self._last:.0f} s",
        )
        self._dropped = 0
        self._last = now


class _Entries:
    """session id -> the time its revocation ends, at most `max_entries` of them. Callers serialise writes."""

    def __init__(self, max_entries: int, what: str) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self.until: dict[str, float] = {}
        self._notice = _LimitNotice(what, max_entries)

    def __len__(self) -> int:
        return len(self.until)

    def add(self, session_id: str, until: float, now: float) -> tuple[bool, list[str]]:
        """Keep the later end; returns (whether it changed, ids dropped to stay within the limit)."""
        if until <= self.until.get(session_id, float("-inf")):
            return False, []
        self.until[session_id] = until
        if len(self.until) <= self.max_entries:
            return True, []
        return True, self._make_room(now)

    def prune(self, now: float) -> None:
        for session_id in [sid for sid, until in self.until.items() if until < now]:
            del self.until[session_id]

    def _make_room(self, now: float) -> list[str]:
        self.prune(now)  # past their session's cap: no token of theirs is accepted anyway
        excess = len(self.until) - int(self.max_entries * EVICT_TO)
        if excess <= 0:
            return []
        # Those ending soonest: the least harm, as their tokens die soonest anyway.
        dropped = [sid for sid, _ in heapq.nsmallest(excess, self.until.items(), key=operator.itemgetter(1))]
        for session_id in dropped:
            del self.until[session_id]
        self._notice.dropped(len(dropped))
        return dropped


class MemoryRevocations:
    def __init__(self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        self._entries = _Entries(max_entries, "the in-memory revocation map")
        self._clock = clock

    def revoke(self, session_id: str, until: float) -> None:
        self._entries.add(session_id, until, self._clock())

    def is_revoked(self, session_id: str, now: float) -> bool:
        until = self._entries.until.get(session_id)
        if until is None:
            return False
        if now > until:
            del self._entries.until[session_id]  # past the session's cap: its tokens are dead anyway
            return False
        return True

    def close(self) -> None:
        return None  # nothing held outside this process


# Redis layout, under `key` (default "gateway:revoked"):
#   key        sorted set: session id -> end of its revocation (the session's cap). What a full sync reads.
#   key:log    sorted set: session id -> version of the write that last touched it. What a refresh reads.
#   key:meta   hash: `epoch` (random, created by the first write into an empty Redis) and `version` (a counter).
# A refresh asks for log entries after the version it last saw: when nothing changed that is a few dozen
# bytes each way whatever the size of the set. A changed (or missing) epoch means Redis lost the set
# (a restart without persistence, a flush): every instance then writes back what it knows.

# KEYS: set, log, meta. ARGV: epoch to create if none, now, max entries, size to cut down to, expired entries to
# remove at most, then id/until pairs. Returns {epoch, version, evicted, trimmed}. With no pairs it only trims.
_WRITE_SCRIPT: Final = """
local version = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
if #ARGV > 5 then
  redis.call('HSETNX', KEYS[3], 'epoch', ARGV[1])
  version = redis.call('HINCRBY', KEYS[3], 'version', 1)
  for i = 6, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 1], ARGV[i])
    redis.call('ZADD', KEYS[2], version, ARGV[i])
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[5]))
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
local evicted = 0
local size = redis.call('ZCARD', KEYS[1])
if size > tonumber(ARGV[3]) then
  local popped = redis.call('ZPOPMIN', KEYS[1], size - tonumber(ARGV[4]))
  for i = 1, #popped, 2 do
    redis.call('ZREM', KEYS[2], popped[i])
  end
  evicted = #popped / 2
end
-- The log can name ids the set lost some other way (an older gateway trims the set alone): bound it too.
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
return {redis.call('HGET', KEYS[3], 'epoch'), version, evicted, #expired}
"""

# KEYS: set, log, meta. ARGV: the last version read, now.
# Returns {epoch, version, id, until, ...} with the live entries written after that version (none if none).
_READ_SCRIPT: Final = """
local meta = redis.call('HMGET', KEYS[3], 'epoch', 'version')
local out = {meta[1], meta[2]}
if meta[2] and tonumber(meta[2]) > tonumber(ARGV[1]) then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')) do
    local ends = redis.call('ZSCORE', KEYS[1], id)
    if ends and tonumber(ends) >= tonumber(ARGV[2]) then
      out[#out + 1] = id
      out[#out + 1] = ends
    end
  end
end
return out
"""


def _text(value: object) -> str | None:
    return value.decode() if isinstance(value, bytes) else None


def _where(url: str) -> str:
    """The Redis address for logs and the readiness answer: never the password the URL may carry."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisRevocations:
    """Revocations shared by every gateway instance through Redis.

    `is_revoked` is a dict lookup (the hot path). Every Redis round trip happens on one background thread:
    `revoke` records the entry locally and queues it, so a slow or hung Redis never stalls the event loop.
    Every `refresh_seconds` the thread writes what is queued, then asks Redis for what changed since its
    last read (O(1) data when nothing did), and every `full_resync_seconds` re-reads the whole set to heal
    anything the changelog missed. When Redis comes back empty (restarted without persistence) the thread
    writes back every live entry it knows, so nothing is lost while one instance lives.

    While Redis is unreachable the instance keeps serving with what it knows; its own revocations apply
    here at once and reach Redis when it answers again. `not_ready_reason` says why it is not in sync.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str = "gateway:revoked",
        refresh_seconds: float = 1.0,
        full_resync_seconds: float = 60.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside the client: the thread tries again every refresh anyway, and a retry with backoff
        # would hold a hung connection for several socket timeouts before reporting it.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        self._write_script = self._redis.register_script(_WRITE_SCRIPT)
        self._read_script = self._redis.register_script(_READ_SCRIPT)
        self._keys = [key, f"{key}:log", f"{key}:meta"]
        self._where = _where(url)
        self._refresh_seconds = refresh_seconds
        self._full_resync_seconds = full_resync_seconds
        self._max_entries = max_entries
        self._clock = clock

        self._lock = threading.Lock()  # guards the maps against the thread; `is_revoked` only reads
        self._known = _Entries(max_entries, "this instance's revocation map")  # made here or learnt from Redis
        self._pending: dict[str, float] = {}  # made here, not yet written to Redis
        self._redis_notice = _LimitNotice(f"the Redis set at {self._where}", max_entries)
        self._epoch: str | None = None  # the identity of the set in Redis, as of the last read
        self._version = 0  # the last changelog version read
        self._up: bool | None = None  # None: no answer yet
        self._down_reason = f"waiting for the first answer from Redis at {self._where}"

        self._tried = threading.Event()  # the first sync succeeded or failed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="revocations-redis", daemon=True)
        self._thread.start()

    # --- the event loop's side: no I/O ---

    def revoke(self, session_id: str, until: float) -> None:
        with self._lock:
            changed, dropped = self._known.add(session_id, until, self._clock())
            if changed:
                self._pending[session_id] = until
            for dropped_id in dropped:
                self._pending.pop(dropped_id, None)
        if changed:
            self._wake.set()

    def is_revoked(self, session_id: str, now: float) -> bool:
        until = self._known.until.get(session_id)
        return until is not None and now <= until

    def not_ready_reason(self) -> str | None:
        """None while in sync with Redis; else why not (for `/_gateway/ready`)."""
        return None if self._up else self._down_reason

    def ping(self) -> str | None:
        """None when Redis answers a PING now (within the socket timeout); else why not (for `/readyz`). Blocks:
        call it off the event loop."""
        import redis

        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return f"Redis at {self._where} unreachable: {type(exc).__name__}"
        return None

    def wait_first_sync(self, timeout: float) -> bool:
        """Block until the first sync succeeded or failed (at most `timeout` s); True if it succeeded."""
        self._tried.wait(timeout)
        return self._up is True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        # A final write of what is queued can take one socket timeout; the thread is a daemon past that.
        self._thread.join(timeout=2 * SOCKET_TIMEOUT_SECONDS + 1)
        self._redis.close()

    # --- the thread's side: every Redis round trip ---

    def _run(self) -> None:
        import redis

        next_poll = 0.0  # monotonic; a sync is due at once
        next_full = 0.0
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            poll_due = now >= next_poll and not stopping
            if poll_due:
                next_poll = now + self._refresh_seconds  # before any I/O: a failure must not make it due again
            # While Redis is down, a revocation waits for the next poll instead of trying at once: a hung Redis
            # costs a socket timeout per attempt.
            write_due = bool(self._pending) and (self._up is True or poll_due or (stopping and self._up is not False))
            try:
                if write_due:
                    self._flush()
                if poll_due and (now >= next_full or not self._poll()):
                    self._full_sync()
                    next_full = now + self._full_resync_seconds
                if write_due or poll_due:
                    self._went_up()
            except redis.RedisError as exc:
                self._went_down(exc)
                next_full = 0.0  # back in touch: read everything, the changelog may have been trimmed meanwhile
            except Exception as exc:  # never let the thread die: the instance would silently stop sharing
                log.exception("revocations: unexpected error talking to Redis at %s", self._where)
                self._went_down(exc)
                next_full = 0.0
            finally:
                if poll_due:
                    self._tried.set()
            if stopping:
                return
            self._wake.wait(timeout=max(0.0, next_poll - time.monotonic()))
            self._wake.clear()

    def _went_up(self) -> None:
        if self._up is not True:
            with self._lock:
                known = len(self._known)
            if self._up is False:
                log.info("revocations: Redis at %s reachable again; in sync, %d revocations known", self._where, known)
            else:
                log.info("revocations: sharing through Redis at %s; %d revocations known", self._where, known)
        self._up = True

    def _went_down(self, exc: Exception) -> None:
        if self._up is not False:
            self._down_reason = (
                f"Redis at {self._where} unreachable since {time.strftime('%Y-%m-%dT%H:%M:%S%z')} "
                f"({type(exc).__name__}: {exc}); revocations made here apply here only until it answers"
            )
            log.warning(
                "revocations: %s. Serving meanwhile; /_gateway/ready answers 503", self._down_reason
            )  # said once per outage, not once per retry
        self._up = False

    def _flush(self) -> None:
        with self._lock:
            batch = list(self._pending.items())
        self._write(batch)

    def _write(self, entries: Sequence[tuple[str, float]]) -> str | None:
        """Write entries in batches; returns the epoch Redis answered with (None if nothing was written)."""
        epoch: str | None = None
        for start in range(0, len(entries), WRITE_BATCH):
            chunk = entries[start : start + WRITE_BATCH]
            reply = self._write_script(keys=self._keys, args=self._write_args(chunk))
            epoch = _text(reply[0])
            if reply[2]:
                self._redis_notice.dropped(int(reply[2]))
            with self._lock:
                for session_id, until in chunk:
                    if self._pending.get(session_id) == until:  # not revoked again meanwhile
                        del self._pending[session_id]
        return epoch

    def _write_args(self, chunk: Sequence[tuple[str, float]]) -> list[str | float]:
        args: list[str | float] = [
            secrets.token_hex(8),
            repr(self._clock()),
            self._max_entries,
            int(self._max_entries * EVICT_TO),
            TRIM_BATCH,
        ]
        for session_id, until in chunk:
            args += [session_id, repr(until)]
        return args

    def _poll(self) -> bool:
        """Read what changed since the last version seen; False if the set's identity changed (full sync due)."""
        reply = self._read_script(keys=self._keys, args=[self._version, repr(self._clock())])
        epoch = _text(reply[0])
        if epoch != self._epoch:
            if self._epoch is not None:
                log.warning(
                    "revocations: the set in Redis at %s is new (restarted without persistence, or flushed); "
                    "writing back what this instance knows",
                    self._where,
                )
            return False
        self._merge((_text(reply[i]) or "", float(reply[i + 1])) for i in range(2, len(reply), 2))
        self._version = int(reply[1] or 0)
        return True

    def _full_sync(self) -> None:
        now = self._clock()
        self._trim()
        pipe = self._redis.pipeline(transaction=True)  # one snapshot: the version matches the entries
        pipe.hmget(self._keys[2], ["epoch", "version"])
        pipe.zrangebyscore(self._keys[0], now, "+inf", withscores=True)
        (epoch_raw, version_raw), entries = pipe.execute()
        epoch = _text(epoch_raw)
        in_redis = {member.decode(): float(score) for member, score in entries}
        self._merge(in_redis.items())
        if epoch != self._epoch or epoch is None:
            # A set this instance has not seen (its first sync, or Redis lost the old one): write back every
            # live entry Redis lacks. Entries are only ever added, so writing them twice is harmless.
            with self._lock:
                self._known.prune(now)
                missing = [(sid, until) for sid, until in self._known.until.items() if in_redis.get(sid, 0.0) < until]
            written = self._write(missing) if missing else None
            if missing and self._epoch is not None:
                log.info("revocations: wrote %d revocations back to Redis at %s", len(missing), self._where)
            epoch = epoch or written
        else:
            with self._lock:
                self._known.prune(now)
        self._epoch = epoch
        self._version = int(version_raw or 0)

    def _trim(self) -> None:
        """Remove entries past their session's cap from Redis, a batch per call (writes also trim a batch)."""
        for _ in range(100):  # bounded: 100 batches is far more than expire between two full syncs
            reply = self._write_script(keys=self._keys, args=self._write_args(()))
            if reply[2]:
                self._redis_notice.dropped(int(reply[2]))
            if int(reply[3]) < TRIM_BATCH:
                return

    def _merge(self, entries: Iterable[tuple[str, float]]) -> None:
        now = self._clock()
        batch: list[tuple[str, float]] = []
        for entry in entries:
            batch.append(entry)
            if len(batch) >= 5_000:  # release the lock now and then: `revoke` on the event loop may be waiting
                self._merge_batch(batch, now)
                batch = []
        self._merge_batch(batch, now)

    def _merge_batch(self, batch: list[tuple[str, float]], now: float) -> None:
        with self._lock:
            for session_id, until in batch:
                _, dropped = self._known.add(session_id, until, now)
                for dropped_id in dropped:
                    self._pending.pop(dropped_id, None)
