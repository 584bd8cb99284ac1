"""The live origin over HTTP: a thin Starlette edge around `LiveStream`.

Routes (one stream, named after the source directory unless `stream_name` is given):
  GET /live/<stream>/master.m3u8
  GET /live/<stream>/<rendition>/index.m3u8[?_HLS_msn=M[&_HLS_part=P]][&_HLS_skip=YES|v2]
  GET /live/<stream>/<rendition>/seg<m>.ts and seg<m>.part<p>.ts   (404 until available)
  GET /live/<stream>/keys/<n>.key                                   (404 until in use)
and, with a `LiveDash` (`dash_routes`; its own stream name, the DASH source directory's by default):
  GET /live/<dash>/manifest.mpd                                     the dynamic MPD
  GET /live/<dash>/patch-<publish ms>.mpp                           an MPD patch (425 / 410 / 404, see dash.py)
  GET /live/<dash>/<rep>/init.mp4 and <rep>/t<time>.m4s             (404 until complete)

A blocking reload is held until the target exists on the injected clock, bounded by
`block_limit_seconds` (default 3 x target duration, rfc8216bis §6.2.5.2), then answered 503. With a
`SimulatedClock` the wait ends as soon as a test advances the clock; no real time passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dev.live_origin.clock import wait_until
from gateway.dev.live_origin.dash import LiveDash, PatchError
from gateway.dev.live_origin.model import DirectiveError, LiveConfig, LiveStream, PlaylistNotReady, Skip
from gateway.dev.live_origin.source import load_vod_source

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
KEY_TYPE = "application/octet-stream"
MPD_TYPE = "application/dash+xml"
PATCH_TYPE = "application/dash-patch+xml"
# Media playlists change every part; segments, parts and keys never change once they exist.
_PLAYLIST_CACHE = "max-age=1"
_IMMUTABLE = "public, max-age=86400, immutable"
_CORS = {"Access-Control-Allow-Origin": "*"}


def build_live_origin(
    config: LiveConfig,
    source_dir: Path | str,
    clock: Callable[[], float] = time.time,
    *,
    stream_name: str | None = None,
    block_limit_seconds: float | None = None,
) -> Starlette:
    """Load `source_dir` (a VOD HLS title) and serve it as a live stream on `clock`'s time."""
    source = load_vod_source(source_dir)
    return build_live_app(
        LiveStream(config, source), clock, stream_name=stream_name, block_limit_seconds=block_limit_seconds
    )


def build_live_app(
    stream: LiveStream,
    clock: Callable[[], float] = time.time,
    *,
    stream_name: str | None = None,
    block_limit_seconds: float | None = None,
    dash: LiveDash | None = None,
    dash_name: str | None = None,
) -> Starlette:
    """Serve an already-built `LiveStream` (lets tests share one loaded source), and `dash` beside it."""
    name = stream_name or stream.source.name
    limit = 3 * stream.target_duration if block_limit_seconds is None else block_limit_seconds
    renditions = frozenset(r.name for r in stream.source.renditions)
    respond = _respond

    def rendition_of(request: Request) -> str:
        return _checked(request, name, "rendition", renditions)

    async def master(request: Request) -> Response:
        rendition_of(request)
        return respond(stream.master_playlist(), PLAYLIST_TYPE, "max-age=10")

    async def media(request: Request) -> Response:
        rendition = rendition_of(request)
        msn, part, skip = _directives(request.query_params)
        deadline: float | None = None
        while True:
            try:
                body = stream.media_playlist(rendition, clock(), msn=msn, part=part, skip=skip)
                return respond(body, PLAYLIST_TYPE, _PLAYLIST_CACHE)
            except DirectiveError as error:
                raise HTTPException(400, str(error)) from None
            except PlaylistNotReady as pending:
                now = clock()
                deadline = now + limit if deadline is None else deadline
                if now >= deadline:
                    raise HTTPException(503, f"{pending} - not within {limit} s") from None
                target = pending.available_at
                if now >= target:  # sub-microsecond rounding disagreement: step past it, never spin
                    target += 1e-6
                await wait_until(clock, min(target, deadline))

    async def segment(request: Request) -> Response:
        rendition = rendition_of(request)
        msn = int(request.path_params["msn"])
        part = request.path_params.get("part")
        if part is not None and int(part) >= stream.timeline.parts_in(msn):
            raise HTTPException(404, f"segment {msn} has no part {part}")
        if stream.config.ll_hls is None and part is not None:
            raise HTTPException(404, "this stream has no parts")
        if not stream.is_available(msn, None if part is None else int(part), clock()):
            raise HTTPException(404, f"segment {msn} part {part} is not available yet")
        if part is None:
            return respond(stream.segment_bytes(rendition, msn), SEGMENT_TYPE, _IMMUTABLE)
        return respond(stream.part_bytes(rendition, msn, int(part)), SEGMENT_TYPE, _IMMUTABLE)

    async def key(request: Request) -> Response:
        rendition_of(request)
        number = int(request.path_params["n"])
        if not stream.key_published(number, clock()):
            raise HTTPException(404, f"key {number} is not in use yet")
        return respond(stream.key_bytes(number), KEY_TYPE, "private, max-age=3600")

    app = Starlette(
        routes=[
            Route("/live/{stream}/master.m3u8", master),
            Route("/live/{stream}/keys/{n:int}.key", key),
            Route("/live/{stream}/{rendition}/index.m3u8", media),
            Route("/live/{stream}/{rendition}/seg{msn:int}.ts", segment),
            Route("/live/{stream}/{rendition}/seg{msn:int}.part{part:int}.ts", segment),
            *(dash_routes(dash, clock, stream_name=dash_name) if dash is not None else []),
        ]
    )
    app.state.stream_name, app.state.live_stream = name, stream
    return app


def _respond(body: bytes, media_type: str, cache_control: str) -> Response:
    return Response(body, media_type=media_type, headers={"Cache-Control": cache_control, **_CORS})


def _checked(request: Request, stream: str, param: str, known: Collection[str]) -> str:
    """The request's rendition or Representation (`param`; "" for none): 404 for another stream or an unknown one."""
    if request.path_params["stream"] != stream:
        raise HTTPException(404, f"no stream {request.path_params['stream']!r}")
    value = str(request.path_params.get(param, ""))
    if value and value not in known:
        raise HTTPException(404, f"no {param} {value!r}")
    return value


def dash_routes(
    dash: LiveDash, clock: Callable[[], float] = time.time, *, stream_name: str | None = None
) -> list[Route]:
    """The routes of one live DASH stream (see the module docstring)."""
    name = stream_name or dash.source.name
    reps = {rep.id: track for track in dash.source.tracks for rep in track.representations}
    respond = _respond

    def checked(request: Request) -> str:
        return _checked(request, name, "rep", reps)

    async def manifest(request: Request) -> Response:
        checked(request)
        return respond(dash.mpd(clock()), MPD_TYPE, _PLAYLIST_CACHE)

    async def patch(request: Request) -> Response:
        checked(request)
        try:
            body = dash.patch(int(request.path_params["ms"]), clock())
        except PatchError as error:
            raise HTTPException(error.status, str(error)) from None
        return respond(body, PATCH_TYPE, _PLAYLIST_CACHE)

    async def init(request: Request) -> Response:
        rep = checked(request)
        return respond(dash.init_bytes(rep), str(reps[rep].mime_type), "public, max-age=3600")

    async def media(request: Request) -> Response:
        rep = checked(request)
        try:
            body = dash.segment_bytes(rep, int(request.path_params["time"]), clock())
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        return respond(body, str(reps[rep].mime_type), _IMMUTABLE)

    return [
        Route("/live/{stream}/manifest.mpd", manifest),
        Route("/live/{stream}/patch-{ms:int}.mpp", patch),
        Route("/live/{stream}/{rep}/init.mp4", init),
        Route("/live/{stream}/{rep}/t{time:int}.m4s", media),
    ]


def _directives(query: Mapping[str, str]) -> tuple[int | None, int | None, Skip]:
    """Parse `_HLS_msn`, `_HLS_part`, `_HLS_skip` (400 on malformed values)."""
    values: list[int | None] = []
    for name in ("_HLS_msn", "_HLS_part"):
        raw = query.get(name)
        if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise HTTPException(400, f"{name}={raw!r} is not a non-negative integer")
        values.append(None if raw is None else int(raw))
    msn, part = values
    if part is not None and msn is None:
        raise HTTPException(400, "_HLS_part without _HLS_msn")
    raw_skip = query.get("_HLS_skip")
    if raw_skip not in (None, "YES", "v2"):
        raise HTTPException(400, f"_HLS_skip={raw_skip!r} is neither YES nor v2")
    skip: Skip = "v2" if raw_skip == "v2" else raw_skip == "YES"
    return msn, part, skip
