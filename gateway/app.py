"""The Starlette application: wires settings, the origin client and the edge. Routes stay thin."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.api import session_routes
from gateway.config import Settings
from gateway.edge import Clock, Edge
from gateway.entitlements import EntitlementPolicy
from gateway.origin import OriginClient
from gateway.revocations import MemoryRevocations, RevocationStore
from gateway.sessions import SessionService


def build_app(
    settings: Settings,
    *,
    clock: Clock = time.time,
    origin_transport: httpx.AsyncBaseTransport | None = None,
    policy: EntitlementPolicy | None = None,
    revocations: RevocationStore | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The gateway: session API, `extra_routes` (e.g. the demo pages), then the edge for every other GET."""
    origin = OriginClient(settings.origin, transport=origin_transport)
    revocations = revocations or MemoryRevocations()
    edge = Edge(settings, origin, clock=clock, revocations=revocations)
    sessions = SessionService(settings, policy or settings.catalog, revocations)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(_: Request) -> Response:
        lines = [
            f'gateway_denials_total{{reason="{reason}"}} {count}' for reason, count in sorted(edge.denials.items())
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
            *session_routes(sessions, clock),
            *extra_routes,
            Route("/{path:path}", edge.handle, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.state.edge = edge
    app.state.sessions = sessions
    return app
