"""Record a live origin: the master once, every media playlist each poll (every distinct version with its
fetch time), and each segment, key and init section once. `simulate --recording DIR` replays it as the origin
(see recorded_origin.py for the layout).

Bounded in time (`duration`), requests (`max_requests`) and bytes (`max_bytes`). Only resources on the master's
own origin are recorded (the gateway only reaches configured origins); others are listed as skipped.
`time_scale` stretches recorded times when the origin runs N times faster than real time (a sped-up
simulator), so the recording's timeline matches its media.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from gateway.errors import ConfigError
from gateway.http.media_types import content_type_for
from gateway.replay.playlist import all_renditions, scan_media
from gateway.replay.recorded_origin import FORMAT

MIN_INTERVAL_SECONDS = 0.05


@dataclass
class RecordStats:
    directory: Path
    rounds: int = 0
    requests: int = 0
    playlist_versions: int = 0
    files: int = 0
    bytes: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stopped_by: str = "duration"


class _Recorder:
    def __init__(self, client: httpx.AsyncClient, directory: Path, master_url: str, limits: tuple[int, int]) -> None:
        self.client, self.directory, self.master_url = client, directory, master_url
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(master_url))
        self.max_requests, self.max_bytes = limits
        self.stats = RecordStats(directory)
        self.playlists: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.last_body: dict[str, bytes] = {}

    def exhausted(self) -> bool:
        if self.stats.requests >= self.max_requests:
            self.stats.stopped_by = "max_requests"
        elif self.stats.bytes >= self.max_bytes:
            self.stats.stopped_by = "max_bytes"
        else:
            return False
        return True

    async def get(self, url: str) -> bytes | None:
        self.stats.requests += 1
        try:
            response = await self.client.get(url)
        except httpx.HTTPError as exc:
            self.stats.failures.append(f"{urlsplit(url).path}: {type(exc).__name__}")
            return None
        if response.status_code != 200:
            self.stats.failures.append(f"{urlsplit(url).path}: HTTP {response.status_code}")
            return None
        self.stats.bytes += len(response.content)
        return response.content

    def local(self, url: str) -> str | None:
        """The URL's path if it is on the recorded origin (and safe to store), else None (skipped)."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin or ".." in parts.path.split("/"):
            if url not in self.stats.skipped:
                self.stats.skipped.append(url)
            return None
        return parts.path

    async def playlist(self, url: str, t: float) -> str | None:
        path = self.local(url)
        body = await self.get(url) if path else None
        if path is None or body is None:
            return None
        if self.last_body.get(path) != body:
            self.last_body[path] = body
            name = f"playlists/{len(self.playlists.get(path, ())) + 1:06d}-{path.strip('/').replace('/', '_')}"
            (self.directory / name).write_bytes(body)
            self.playlists.setdefault(path, []).append({"t": t, "file": name})
            self.stats.playlist_versions += 1
        return body.decode("utf-8", "replace")

    async def media(self, url: str, t: float) -> None:
        text = await self.playlist(url, t)
        if text is None:
            return
        try:
            playlist = scan_media(text)
        except ValueError as exc:
            self.stats.failures.append(f"{urlsplit(url).path}: {exc}")
            return
        for segment in playlist.segments:
            for uri in (segment.map_uri, segment.key_uri, segment.uri):
                if uri is not None and not self.exhausted():
                    await self.file(urljoin(url, uri), t)

    async def file(self, url: str, t: float) -> None:
        path = self.local(url)
        if path is None or path in self.files:
            return
        body = await self.get(url)
        if body is None:
            return
        name = "files" + path
        target = self.directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        self.files[path] = {"t": t, "file": name, "content_type": content_type_for(path)}
        self.stats.files += 1


async def record(
    master_url: str,
    directory: Path,
    *,
    duration: float,
    interval: float | None = None,
    time_scale: float = 1.0,
    max_requests: int = 20_000,
    max_bytes: int = 512 * 1024 * 1024,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> RecordStats:
    """Poll `master_url`'s media playlists every `interval` (default: their target duration) for `duration` s."""
    if duration <= 0 or time_scale <= 0 or (interval is not None and interval <= 0):
        raise ConfigError("record: duration, interval and time scale must be positive")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "playlists").mkdir(exist_ok=True)
    own = client is None
    http = client or httpx.AsyncClient(timeout=10.0, trust_env=False, follow_redirects=False)
    recorder = _Recorder(http, directory, master_url, (max_requests, max_bytes))
    started = clock()

    def stamp() -> float:
        return started + (clock() - started) * time_scale

    try:
        master_text = await recorder.playlist(master_url, stamp())
        if master_text is None:
            raise ConfigError(f"record: cannot load the master {master_url}: {recorder.stats.failures[-1:]}")
        urls = all_renditions(master_text, master_url)
        if not urls:
            raise ConfigError(f"record: {master_url} names no media playlist")
        target_duration: float | None = None
        deadline = started + duration
        for _ in range(int(duration / MIN_INTERVAL_SECONDS) + 1):  # bounded by rounds, time, requests and bytes
            if clock() >= deadline or recorder.exhausted():
                break
            round_start = clock()
            recorder.stats.rounds += 1
            for url in urls:
                await recorder.media(url, stamp())
            if target_duration is None:
                target_duration = _target_duration(recorder, urls)
            pause = max(interval or target_duration or 1.0, MIN_INTERVAL_SECONDS) - (clock() - round_start)
            await asyncio.sleep(max(0.0, min(pause, deadline - clock())))
    finally:
        if own:
            await http.aclose()
    manifest = {
        "format": FORMAT,
        "origin": recorder.origin,
        "master_path": urlsplit(master_url).path,
        "started_at": started,
        "ended_at": stamp(),
        "time_scale": time_scale,
        "target_duration": target_duration or 2.0,
        "playlists": recorder.playlists,
        "files": recorder.files,
        "skipped": recorder.stats.skipped,
        "failures": recorder.stats.failures[:200],
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return recorder.stats


def _target_duration(recorder: _Recorder, urls: list[str]) -> float | None:
    for url in urls:
        body = recorder.last_body.get(urlsplit(url).path)
        if body is not None:
            try:
                return scan_media(body.decode("utf-8", "replace")).target_duration
            except ValueError:
                continue
    return None
