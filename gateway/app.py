"""The Starlette application: wires settings, the origin client and the edge. Routes stay thin."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.config import Settings
from gateway.edge import Clock, Edge
from gateway.origin import OriginClient


def build_app(
    settings: Settings,
    *,
    clock: Clock = time.time,
    origin_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    origin = OriginClient(settings.origin, transport=origin_transport)
    edge = Edge(settings, origin, clock=clock)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(_: Request) -> Response:
        lines = [
            f'gateway_denials_total{{reason="{reason}"}} {count}'
            for reason, count in sorted(edge.denials.items())
        ]
        lines.append(f"gateway_manifest_origin_fetches_total {edge.manifests.origin_fetches}")
        return PlainTextResponse("\n".join(lines) + "\n")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await origin.aclose()

    app = Starlette(
        routes=[
            Route("/_gateway/health", health, methods=["GET"]),
            Route("/_gateway/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", edge.handle, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.state.edge = edge
    return app
