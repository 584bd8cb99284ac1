"""Stream counts and network sightings shared by every gateway instance through Redis.

The same rules as the pure cores (gateway/sessions/stream_table.py, gateway/sessions/sharing.py), run as
one Lua script per heartbeat, so a check and its update are atomic across instances: two instances
admitting a user's third stream at the same moment cannot both see two. Keys, under `key` (default
"gateway:streams"), each with an expiry so nothing outlives its use:

    key:user:<user>     sorted set: stream -> last seen                    expires after idle_seconds
    key:nets:<stream>   sorted set: client network -> last seen             expires after the sharing window
    key:evicted         sorted set: stream -> until when it stays refused   trimmed on every call
    key:all             sorted set: user + "\\n" + stream -> last seen       trimmed on every call (the gauge)

Unlike revocations (a dict lookup, synced in the background), a heartbeat asks Redis on the request: the
limit has to be decided when a stream starts, against every instance's streams. The watcher calls it at
most once per `heartbeat_seconds` for a stream already admitted. If Redis does not answer within
`SOCKET_TIMEOUT_SECONDS`, the stream is admitted (logged at most once a minute), and for the next
`RETRY_SECONDS` heartbeats admit at once without asking: a Redis outage must neither stop playback nor make
every playlist request wait out a timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from gateway.config_schema import OnLimit
from gateway.sessions.revocations import _where
from gateway.sessions.sharing import SharingPolicy, SharingVerdict
from gateway.sessions.stream_store import Observation
from gateway.sessions.stream_table import Outcome, StreamPolicy, StreamVerdict

log = logging.getLogger("gateway.sessions.streams")

SOCKET_TIMEOUT_SECONDS: Final = 1.0  # a heartbeat waits this long at most, then the stream is admitted
RETRY_SECONDS: Final = 5.0  # after a failure, heartbeats admit without asking Redis for this long
OUTAGE_LOG_SECONDS: Final = 60.0

# KEYS: user set (or a placeholder when not counted), nets set (or a placeholder), evicted, all.
# ARGV: stream, now, count (1/0), idle, max, evict (1/0), evicted_seconds, user, network ('' = off), window,
# max_networks. Returns {outcome, user streams, evicted stream or '', networks, detected (1/0), active total}.
_SCRIPT: Final = """
local stream, now = ARGV[1], tonumber(ARGV[2])
local networks, detected = 0, 0
if ARGV[9] ~= '' then
  local window = tonumber(ARGV[10])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - window))
  local added = redis.call('ZADD', KEYS[2], now, ARGV[9])
  networks = redis.call('ZCARD', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
  if added == 1 and networks == tonumber(ARGV[11]) + 1 then detected = 1 end
end
if ARGV[3] ~= '1' then
  return {'uncounted', 0, '', networks, detected, 0}
end
local idle, user = tonumber(ARGV[4]), ARGV[8]
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - idle))
if redis.call('ZSCORE', KEYS[3], stream) then
  return {'evicted', redis.call('ZCARD', KEYS[1]), '', networks, detected, redis.call('ZCARD', KEYS[4])}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - idle))
local outcome, evicted = 'admitted', ''
if not redis.call('ZSCORE', KEYS[1], stream) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then
  if ARGV[6] ~= '1' then
    return {'blocked', redis.call('ZCARD', KEYS[1]), '', networks, detected, redis.call('ZCARD', KEYS[4])}
  end
  evicted = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  redis.call('ZREM', KEYS[1], evicted)
  redis.call('ZREM', KEYS[4], user .. '\\n' .. evicted)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), evicted)
end
redis.call('ZADD', KEYS[1], now, stream)
redis.call('PEXPIRE', KEYS[1], math.ceil(idle * 1000))
redis.call('ZADD', KEYS[4], now, user .. '\\n' .. stream)
return {outcome, redis.call('ZCARD', KEYS[1]), evicted, networks, detected, redis.call('ZCARD', KEYS[4])}
"""

# KEYS: user set, all. ARGV: stream, user.
_RELEASE: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2] .. '\\n' .. ARGV[1])
return 1
"""


class RedisStreams:
    def __init__(
        self, url: str, streams: StreamPolicy, sharing: SharingPolicy, *, key: str = "gateway:streams"
    ) -> None:
        import redis.asyncio
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._redis.register_script(_SCRIPT)
        self._release = self._redis.register_script(_RELEASE)
        self._key = key
        self._where = _where(url)
        self._streams = streams
        self._sharing = sharing
        self._last_outage_log = float("-inf")
        self._skip_until = float("-inf")  # monotonic

    async def observe(self, *, user: str | None, stream: str, network: str | None, now: float) -> Observation:
        import redis

        if time.monotonic() < self._skip_until:
            return Observation(None, None, 0)
        counted = user is not None and self._streams.max_streams > 0
        keys = [
            f"{self._key}:user:{user}" if counted else f"{self._key}:none",
            f"{self._key}:nets:{stream}" if network is not None else f"{self._key}:none",
            f"{self._key}:evicted",
            f"{self._key}:all",
        ]
        args = [
            stream,
            repr(now),
            "1" if counted else "0",
            repr(float(self._streams.idle_seconds)),
            self._streams.max_streams,
            "1" if self._streams.on_limit is OnLimit.EVICT_OLDEST else "0",
            repr(float(self._streams.evicted_seconds)),
            user or "",
            network or "",
            repr(float(self._sharing.window_seconds)),
            self._sharing.max_networks,
        ]
        try:
            reply = await self._script(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            self._outage(exc)
            return Observation(None, None, 0)
        outcome, user_streams, evicted, networks, detected, active = reply
        verdict = None
        if counted:
            evicted_id = evicted.decode() if isinstance(evicted, bytes) else str(evicted)
            verdict = StreamVerdict(Outcome(outcome.decode()), int(user_streams), evicted_id or None)
        sharing = None if network is None else SharingVerdict(int(networks), bool(int(detected)))
        return Observation(verdict, sharing, int(active))

    async def release(self, user: str, stream: str) -> None:
        import redis

        try:
            await self._release(keys=[f"{self._key}:user:{user}", f"{self._key}:all"], args=[stream, user])
        except (redis.RedisError, OSError) as exc:
            self._outage(exc)  # the slot frees itself after idle_seconds anyway

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _outage(self, exc: Exception) -> None:
        now = time.monotonic()
        self._skip_until = now + RETRY_SECONDS
        if now - self._last_outage_log >= OUTAGE_LOG_SECONDS:
            self._last_outage_log = now
            log.warning(
                "streams: Redis at %s did not answer a heartbeat (%s: %s); admitting streams uncounted, asking again "
                "every %g s",
                self._where,
                type(exc).__name__,
                exc,
                RETRY_SECONDS,
            )
