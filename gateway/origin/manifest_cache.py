"""Prepared manifests, one per origin version, with request coalescing.

A manifest is fetched and rewritten once; every request then only renders the prepared template with
its tokens. Concurrent misses for the same URL share one origin fetch. After the freshness window the
entry is revalidated with a conditional GET, and a 304 keeps the prepared template.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from gateway.config import OriginSettings
from gateway.errors import OriginTimeout
from gateway.manifests.template import PreparedManifest
from gateway.origin.client import OriginClient, count_origin_error, redact_url
from gateway.telemetry.metrics import CACHE_COALESCED, CACHE_HIT, CACHE_MISS, PREPARE_SECONDS

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.IGNORECASE)
Prepare = Callable[[bytes], PreparedManifest]


@dataclass(slots=True)
class _Entry:
    prepared: PreparedManifest
    fresh_until: float
    ttl_seconds: float
    validators: dict[str, str]


def freshness_seconds(
    prepared: PreparedManifest,
    cache_control: str | None,
    settings: OriginSettings,
    *,
    expires: str | None = None,
    date: str | None = None,
    now: float = 0.0,
) -> float:
    """The origin's max-age (s-maxage) if it gave one, else its `Expires` (against its `Date`, else `now`);
    else long for manifests players load once (a master, a VOD playlist, a static MPD), short for those
    they reload (live and EVENT playlists, dynamic MPDs)."""
    if cache_control:
        if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
            return 0.0
        match = _MAX_AGE.search(cache_control)
        if match:
            return float(match.group(1))
    if expires is not None:
        expires_at = _http_date(expires)
        if expires_at is None:
            return 0.0  # RFC 9111 §5.3: an invalid Expires (e.g. "0") means already expired
        return max(0.0, expires_at - (_http_date(date) or now))
    return settings.live_manifest_cache_seconds if prepared.reloaded else settings.vod_manifest_cache_seconds


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# A manifest larger than this is prepared in a worker thread: preparing costs ~1.6 us a line, so anything
# bigger would hold the event loop (and every other viewer) for more than a few milliseconds. In a thread
# the GIL still hands the loop a turn every switch interval (5 ms).
OFFLOAD_BYTES = 64 * 1024
MAX_CACHE_BYTES = 256 * 1024 * 1024


class ManifestCache:
    def __init__(
        self,
        origin: OriginClient,
        settings: OriginSettings,
        *,
        max_bytes: int,
        max_entries: int = 512,
        max_cache_bytes: int = MAX_CACHE_BYTES,
    ):
        self._origin = origin
        self._settings = settings
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._max_cache_bytes = max_cache_bytes
        self._cached_bytes = 0
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._in_flight: dict[tuple[str, str], asyncio.Future[PreparedManifest]] = {}
        # The whole manifest must arrive within this, however slowly an origin drips it byte by byte.
        self._deadline_seconds = settings.connect_timeout_seconds + settings.read_timeout_seconds
        self.origin_fetches = 0

    @property
    def cached_bytes(self) -> int:
        """What the prepared manifests held here take in memory (bounded by `max_cache_bytes`)."""
        return self._cached_bytes

    def fresh_for(self, url: str, variant: str, *, now: float) -> float:
        """How long the cached copy of `url` as `variant` stays fresh from `now` (0: not cached, or stale).
        What a shared manifest tells downstream caches: never longer than the origin allowed us."""
        entry = self._entries.get((variant, url))
        return 0.0 if entry is None else max(0.0, entry.fresh_until - now)

    def peek(self, url: str, variant: str) -> PreparedManifest | None:
        """The prepared manifest held for `url` as `variant`, fresh or not; None when there is none (never fetches)."""
        entry = self._entries.get((variant, url))
        return None if entry is None else entry.prepared

    async def get(
        self, url: str, variant: str, prepare: Prepare, *, now: float, fresh_through: float = 0.0
    ) -> PreparedManifest:
        """The prepared manifest for `url`; `variant` names how it was prepared (route, delivery mode).

        `fresh_through`: a copy that goes stale before then is refreshed early, where a fresh one would last
        that long (the nginx front keeps whole seconds: gateway/http/front_cache.py)."""
        key = (variant, url)
        entry = self._entries.get(key)
        if (
            entry is not None
            and now < entry.fresh_until
            and (entry.fresh_until >= fresh_through or now + entry.ttl_seconds < fresh_through)
        ):
            self._entries.move_to_end(key)
            CACHE_HIT.inc()
            return entry.prepared
        pending = self._in_flight.get(key)
        if pending is not None:
            CACHE_COALESCED.inc()
        else:
            CACHE_MISS.inc()
            # The fetch is a task of its own: a request that gives up (its viewer left, its handler was
            # cancelled) must not cancel the fetch every other request for this manifest is waiting on.
            pending = asyncio.get_running_loop().create_task(self._refresh(key, entry, prepare, now))
            self._in_flight[key] = pending
            pending.add_done_callback(functools.partial(self._settled, key))
        return await asyncio.shield(pending)

    def _settled(self, key: tuple[str, str], task: asyncio.Task[PreparedManifest]) -> None:
        del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: the waiters re-raise it, nobody else must

    async def _refresh(
        self, key: tuple[str, str], entry: _Entry | None, prepare: Prepare, now: float
    ) -> PreparedManifest:
        url = key[1]
        self.origin_fetches += 1
        try:
            async with asyncio.timeout(self._deadline_seconds):
                fetched = await self._origin.fetch_manifest(
                    url, max_bytes=self._max_bytes, conditional=entry.validators if entry else None
                )
        except TimeoutError:
            count_origin_error("origin_timeout")
            raise OriginTimeout(
                f"origin did not deliver the whole manifest within {self._deadline_seconds:g} s ({redact_url(url)})"
            ) from None
        if fetched.status == 304 and entry is not None:
            entry.fresh_until = now + entry.ttl_seconds
            return entry.prepared
        started = time.perf_counter()
        if len(fetched.body) > OFFLOAD_BYTES:
            prepared = await asyncio.to_thread(prepare, fetched.body)
        else:
            prepared = prepare(fetched.body)
        PREPARE_SECONDS.observe(time.perf_counter() - started)
        validators: dict[str, str] = {}
        if "etag" in fetched.headers:
            validators["if-none-match"] = fetched.headers["etag"]
        if "last-modified" in fetched.headers:
            validators["if-modified-since"] = fetched.headers["last-modified"]
        headers = fetched.headers
        ttl = freshness_seconds(
            prepared,
            headers.get("cache-control"),
            self._settings,
            expires=headers.get("expires"),
            date=headers.get("date"),
            now=now,
        )
        age = headers.get("age", "")
        if age.isdigit():  # the origin's own cache already held it this long (RFC 9111 §4.2.3)
            ttl = max(0.0, ttl - int(age))
        self._store(key, _Entry(prepared, now + ttl, ttl, validators))
        return prepared

    def _store(self, key: tuple[str, str], entry: _Entry) -> None:
        """Keep `entry`, evicting the least recently used until both the entry and the byte bounds hold.
        A manifest bigger than the whole byte budget is served but never kept."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._cached_bytes -= old.prepared.size_bytes
        size = entry.prepared.size_bytes
        if size > self._max_cache_bytes:
            return
        self._entries[key] = entry
        self._cached_bytes += size
        while len(self._entries) > self._max_entries or self._cached_bytes > self._max_cache_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._cached_bytes -= evicted.prepared.size_bytes
