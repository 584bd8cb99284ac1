"""A recording (see recording.py) served back as a live origin: at time t, each playlist as it was at t.

    DIR/manifest.json      {"format", "origin", "master_path", "started_at", "ended_at", "target_duration",
                            "time_scale", "playlists": {path: [{"t", "file"}...]}, "files": {path: {"t", "file",
                            "content_type"}}}
    DIR/playlists/…        every distinct version of every playlist
    DIR/files/<path>       segments, keys and init sections, once each

Times are epoch seconds of the recording (scaled by `time_scale` when the recorded origin ran faster than
real time). A file is served once the playlist version that first listed it is current.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.errors import ConfigError

FORMAT = "gateway-replay-recording/1"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


@dataclass(frozen=True)
class Recording:
    directory: Path
    origin: str
    master_path: str
    started_at: float
    ended_at: float
    target_duration: float
    playlists: dict[str, tuple[tuple[float, ...], tuple[str, ...]]]  # path -> (times, files), by time
    files: dict[str, tuple[float, str, str]]  # path -> (listed at, file, content type)

    @property
    def playable_from(self) -> float:
        """The first instant at which every recorded playlist has a version."""
        return max(times[0] for times, _ in self.playlists.values())

    @property
    def playable_seconds(self) -> float:
        return self.ended_at - self.playable_from

    def path(self, relative: str) -> Path:
        full = (self.directory / relative).resolve()
        if not full.is_relative_to(self.directory.resolve()):
            raise ConfigError(f"recording: {relative!r} points outside {self.directory}")
        return full


def load_recording(directory: Path) -> Recording:
    try:
        data: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--recording {directory}: no readable manifest.json ({exc})") from exc
    if data.get("format") != FORMAT:
        raise ConfigError(f"--recording {directory}: format {data.get('format')!r}, expected {FORMAT}")
    playlists: dict[str, tuple[tuple[float, ...], tuple[str, ...]]] = {}
    for path, versions in data["playlists"].items():
        ordered = sorted(versions, key=lambda v: float(v["t"]))
        if ordered:
            playlists[path] = (tuple(float(v["t"]) for v in ordered), tuple(str(v["file"]) for v in ordered))
    if data["master_path"] not in playlists or len(playlists) < 2:
        raise ConfigError(f"--recording {directory}: needs the master and at least one media playlist")
    files = {p: (float(f["t"]), str(f["file"]), str(f["content_type"])) for p, f in data["files"].items()}
    return Recording(
        directory=directory,
        origin=str(data["origin"]),
        master_path=str(data["master_path"]),
        started_at=float(data["started_at"]),
        ended_at=float(data["ended_at"]),
        target_duration=float(data["target_duration"]),
        playlists=playlists,
        files=files,
    )


def build_recorded_origin(recording: Recording, clock: Callable[[], float]) -> Starlette:
    """A Starlette origin serving `recording` at `clock()`'s time (404 for anything not yet recorded)."""

    async def serve(request: Request) -> Response:
        path, now = request.url.path, clock()
        versions = recording.playlists.get(path)
        if versions is not None:
            times, names = versions
            index = bisect.bisect_right(times, now + 1e-6) - 1
            if index < 0:
                return PlainTextResponse(f"{path}: not recorded yet at {now:.3f}", status_code=404)
            body = recording.path(names[index]).read_bytes()
            return Response(body, media_type=PLAYLIST_TYPE, headers={"cache-control": "max-age=1"})
        found = recording.files.get(path)
        if found is None or found[0] > now + 1e-6:
            return PlainTextResponse(f"{path}: not in the recording at {now:.3f}", status_code=404)
        body = recording.path(found[1]).read_bytes()
        return Response(body, media_type=found[2], headers={"cache-control": "public, max-age=86400"})

    return Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "HEAD"])])
