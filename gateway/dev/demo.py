"""`python -m gateway demo`: the gateway on its embedded default, with no external service.

A demo origin serves the bundled streams (fixtures/media) on 127.0.0.1; the gateway protects it under
one mount per delivery mode (the live streams under query, cookie and queryparam mounts); demo users and
titles exercise the entitlement checks; the demo page (hls.js, dash.js or shaka-player, renewing tokens
through their request hooks) is served at `/`, and the plain player page (any of them with no token logic
at all) at `/players/plain.html`. A development key is created on first run (with a loud warning).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.config import Route as GatewayRoute
from gateway.config import SessionSettings, Settings
from gateway.config_schema import NO_ENVIRONMENT, Delivery, LogFormat, choice
from gateway.http.app import build_app
from gateway.http.cors import CorsPolicy
from gateway.http.edge import Clock
from gateway.http.media_types import content_type_for
from gateway.runtime import UVICORN_OPTIONS, configure_logging, tune_allocator
from gateway.sessions.entitlements import CatalogEntitlements, Title, Viewer
from gateway.startup import describe
from gateway.tokens.keys import new_key_entry, parse_key_ring

REPO = Path(__file__).resolve().parents[2]  # gateway/dev/demo.py -> the repository
MEDIA_ROOT = REPO / "fixtures" / "media"
PLAYERS = REPO / "players"
NODE_MODULES = PLAYERS / "node_modules"
HLS_JS = NODE_MODULES / "hls.js" / "dist" / "hls.min.js"
# Served at /players/vendor/<name>: an allow-list of built player files, never a view of node_modules.
VENDOR_FILES = {
    "hls.min.js": HLS_JS,
    "shaka-player.compiled.js": NODE_MODULES / "shaka-player" / "dist" / "shaka-player.compiled.js",
    "dash.all.min.js": NODE_MODULES / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js",
}
PLAYER_FILES = {
    "index.html": "text/html",
    "demo.js": "text/javascript",
    "demo.css": "text/css",
    "screenshot.png": "image/png",
    "plain.html": "text/html",
    "plain.js": "text/javascript",
}

log = logging.getLogger("gateway.dev.demo")

DEMO_USERS = {
    "demo-paid": Viewer("u-paid", "Paula (paid)", "paid", "NL"),
    "demo-free": Viewer("u-free", "Fred (free)", "free", "NL"),
    "demo-abroad": Viewer("u-abroad", "Beatriz (paid, in Brazil)", "paid", "BR"),
}
LIVE_TITLE = Title("/live/title-9000/", "Live: Title 9000 (24/7 loop, key rotation, 60 s DVR)", paid=False)
PREMIUM_COUNTRIES = frozenset({"NL", "DE", "FR", "GB", "US"})
# The DASH title is premium like title-9000 (same plan and countries), so the session API's refusals
# (`not_entitled`, `geo_blocked`) can be seen with a DASH player too.
DASH_TITLE = Title(
    "/vod/dash-9000/",
    "Title 9000, DASH (premium)",
    paid=True,
    allowed_countries=PREMIUM_COUNTRIES,
)
LIVE_DASH_TITLE = Title("/live/dash-9000/", "Live: Title 9000, DASH (24/7 loop, dynamic MPD)", paid=False)
LIVE_TITLES = (LIVE_TITLE, LIVE_DASH_TITLE)
DEMO_TITLES = (
    Title("/vod/title-9000/", "Title 9000 (premium)", paid=True, allowed_countries=PREMIUM_COUNTRIES),
    Title("/vod/free-trailer/", "Free trailer", paid=False),
    LIVE_TITLE,
    DASH_TITLE,
    LIVE_DASH_TITLE,
)
# A title's manifest, below its prefix (the prefix is the manifest's directory: see SessionService).
MANIFESTS = {DASH_TITLE.prefix: "manifest.mpd", LIVE_DASH_TITLE.prefix: "manifest.mpd"}
DEMO_MODES = (
    (Delivery.QUERY, "/vod/"),
    (Delivery.COOKIE, "/cookie/vod/"),
    (Delivery.HYBRID, "/hybrid/vod/"),
    (Delivery.PATH, "/pathmode/vod/"),
    (Delivery.QUERYPARAM, "/queryparam/vod/"),
)
LIVE_MODES = (
    (Delivery.QUERY, "/live/"),
    (Delivery.COOKIE, "/cookie/live/"),
    (Delivery.QUERYPARAM, "/queryparam/live/"),
)


def development_keys(state_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT) -> str:
    """GATEWAY_KEYS of `environ` if set; else a development key kept in `state_dir` (created once, loudly)."""
    if environ.get("GATEWAY_KEYS"):
        return environ["GATEWAY_KEYS"]
    key_file = state_dir / "dev-keys"
    if not key_file.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(new_key_entry("dev1") + "\n")
        key_file.chmod(0o600)
        print(
            f"\n*** WARNING: created a DEVELOPMENT signing key in {key_file}.\n"
            "*** It protects nothing: never use it in production. Set GATEWAY_KEYS "
            "(`python -m gateway keys new`).\n",
            file=sys.stderr,
        )
    return key_file.read_text().strip()


def demo_settings(
    state_dir: Path,
    origin_url: str,
    *,
    leeway_seconds: float = 5.0,
    cors: CorsPolicy | None = None,
    environ: Mapping[str, str] = NO_ENVIRONMENT,
    **session_overrides: int | bool | str,
) -> Settings:
    """The demo's settings; `environ` may give GATEWAY_KEYS (else a development key in `state_dir`) and
    GATEWAY_LOG_FORMAT."""
    vod, live = origin_url.rstrip("/") + "/vod/", origin_url.rstrip("/") + "/live/"
    return Settings(
        keys=parse_key_ring(development_keys(state_dir, environ)),
        routes=tuple(GatewayRoute(mount=mount, origin=vod, delivery=delivery) for delivery, mount in DEMO_MODES)
        + tuple(
            # Live DASH in queryparam mode: shaka appends the MPD URL's query to MPD reloads and patch requests
            # only from a RequestParam (it reads the Annex I descriptors for segments alone); see README.
            GatewayRoute(mount=mount, origin=live, delivery=delivery, request_param=delivery is Delivery.QUERYPARAM)
            for delivery, mount in LIVE_MODES
        ),
        sessions=SessionSettings(**session_overrides),  # type: ignore[arg-type]
        catalog=CatalogEntitlements(DEMO_USERS, DEMO_TITLES),
        leeway_seconds=leeway_seconds,
        cors=cors or CorsPolicy(),
        log_format=choice("GATEWAY_LOG_FORMAT", environ.get("GATEWAY_LOG_FORMAT") or "text", LogFormat),
    )


def demo_page_routes() -> list[BaseRoute]:
    """The page, its files and the players: what any site hosting the player serves (see `?gateway=` in demo.js)."""

    async def page(_: Request) -> Response:
        return FileResponse(PLAYERS / "index.html", headers={"cache-control": "no-store"})

    async def vendor_file(request: Request) -> Response:
        path = VENDOR_FILES.get(request.path_params["name"])
        if path is None:
            return JSONResponse(
                {"error": "not_found", "detail": f"no player file {request.path_params['name']!r}"}, status_code=404
            )
        if not path.exists():
            return JSONResponse(
                {"error": "players_not_installed", "detail": "run `npm ci` in players/ (scripts/demo.sh does)"},
                status_code=503,
            )
        return FileResponse(path, media_type="text/javascript")

    async def player_file(request: Request) -> Response:
        # An allow-list, not a static mount: players/ also holds node_modules and the test driver.
        name = request.path_params["name"]
        if name not in PLAYER_FILES:
            return JSONResponse({"error": "not_found", "detail": f"no demo file {name!r}"}, status_code=404)
        return FileResponse(PLAYERS / name, media_type=PLAYER_FILES[name], headers={"cache-control": "no-cache"})

    return [
        Route("/", page, methods=["GET"]),
        Route("/players/vendor/{name:str}", vendor_file, methods=["GET"]),
        Route("/players/{name:str}", player_file, methods=["GET"]),
    ]


def demo_routes() -> list[BaseRoute]:
    """The page routes plus the demo catalog the page reads from its gateway."""

    async def catalog(_: Request) -> Response:
        users = [
            {"credential": credential, "name": v.name, "plan": v.plan, "country": v.country}
            for credential, v in DEMO_USERS.items()
        ]
        titles = [
            {
                "asset": t.prefix + MANIFESTS.get(t.prefix, "master.m3u8"),
                "name": t.name,
                "paid": t.paid,
                "live": t in LIVE_TITLES,
                "format": "dash" if MANIFESTS.get(t.prefix, "").endswith(".mpd") else "hls",
            }
            for t in DEMO_TITLES
        ]
        modes = [{"name": name, "mount": mount} for name, mount in DEMO_MODES]
        live_modes = [{"name": name, "mount": mount} for name, mount in LIVE_MODES]
        return JSONResponse({"users": users, "titles": titles, "modes": modes, "live_modes": live_modes})

    return [*demo_page_routes(), Route("/api/demo/catalog", catalog, methods=["GET"])]


def build_demo(
    state_dir: Path,
    origin_url: str,
    *,
    clock: Clock = time.time,
    leeway_seconds: float = 5.0,
    cors: CorsPolicy | None = None,
    environ: Mapping[str, str] = NO_ENVIRONMENT,
    **session_overrides: int | bool | str,
) -> Starlette:
    """The demo gateway in front of `origin_url` (the demo origin, see `build_demo_origin`).

    `session_overrides` are `SessionSettings` fields (e.g. `media_ttl_seconds=4` for short-TTL tests);
    `cors` lists the sites whose pages may play cookie sessions cross-site.
    """
    settings = demo_settings(
        state_dir, origin_url, leeway_seconds=leeway_seconds, cors=cors, environ=environ, **session_overrides
    )
    return build_app(settings, clock=clock, extra_routes=demo_routes())


class _MediaFiles(StaticFiles):
    """StaticFiles with our content types (Python's tables map .ts and .key wrongly)."""

    def file_response(self, full_path: str | os.PathLike[str], *args: object, **kwargs: object) -> Response:
        response = super().file_response(full_path, *args, **kwargs)  # type: ignore[arg-type]
        response.headers["content-type"] = content_type_for(str(full_path))
        return response


def build_demo_origin(
    media_root: Path = MEDIA_ROOT, *, clock: Clock = time.time, dash_patch_ttl_seconds: int | None = 60
) -> Starlette:
    """The demo origin: the bundled streams as static files (a stand-in for your packager or storage),
    the live simulator looping title-9000 at /live/title-9000/ (2 s segments, key rotation, DVR) and
    dash-9000 as live DASH at /live/dash-9000/manifest.mpd (dynamic MPD, 30 s time-shift buffer).

    `dash_patch_ttl_seconds` adds a PatchLocation (MPD patches, valid that long) to the live MPD; None leaves
    patches out (players then reload the whole MPD)."""
    from gateway.dev.live_origin import LiveConfig, LiveStream, load_vod_source
    from gateway.dev.live_origin.dash import LiveDash, LiveDashConfig
    from gateway.dev.live_origin.dash_source import load_dash_source
    from gateway.dev.live_origin.server import build_live_app

    source = load_vod_source(media_root / "vod" / "title-9000")
    window = 6 * 2.0
    config = LiveConfig(start_time=clock() - window, dvr_window_seconds=60, key_rotation_every=5)
    dash_config = LiveDashConfig(start_time=clock() - 30, patch_ttl_seconds=dash_patch_ttl_seconds)
    dash = LiveDash(dash_config, load_dash_source(media_root / "vod" / "dash-9000"))
    live = build_live_app(LiveStream(config, source), clock, dash=dash)
    return Starlette(routes=[*live.routes, Mount("/", app=_MediaFiles(directory=media_root))])


async def _serve(gateway: Starlette, origin: Starlette, host: str, port: int, origin_port: int) -> None:
    servers = [
        uvicorn.Server(uvicorn.Config(origin, host="127.0.0.1", port=origin_port, **UVICORN_OPTIONS)),
        uvicorn.Server(uvicorn.Config(gateway, host=host, port=port, **UVICORN_OPTIONS)),
    ]
    await asyncio.gather(*(server.serve() for server in servers))


def run_demo(
    host: str, port: int, state_dir: Path, environ: Mapping[str, str] = NO_ENVIRONMENT, **session_overrides: Any
) -> int:
    """`session_overrides`: `SessionSettings` fields from the command line (token TTLs, max life); `environ`:
    the environment the command line was given (GATEWAY_KEYS)."""
    origin_port = port + 1
    settings = demo_settings(state_dir, f"http://127.0.0.1:{origin_port}/", environ=environ, **session_overrides)
    configure_logging(settings.log_format)
    gateway = build_app(settings, extra_routes=demo_routes())
    log.info("%s", describe(settings, f"http://{host}:{port}"))
    if not HLS_JS.exists():
        print("note: players/node_modules is missing: run `npm ci` in players/ (scripts/demo.sh does)", file=sys.stderr)
    print(f"demo: open http://{host}:{port}/   (origin on 127.0.0.1:{origin_port}; Ctrl-C to stop)")
    tune_allocator()
    asyncio.run(_serve(gateway, build_demo_origin(), host, port, origin_port))
    return 0
