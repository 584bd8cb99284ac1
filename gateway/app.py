"""The Starlette application: wires settings, the origin client and the edge. Routes stay thin."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.api import session_routes
from gateway.config import Settings
from gateway.edge import Clock, Edge
from gateway.entitlements import EntitlementPolicy
from gateway.keys import Ed25519Key, b64url_encode
from gateway.origin import OriginClient
from gateway.revocations import MemoryRevocations, RedisRevocations, RevocationStore
from gateway.sessions import SessionService


def published_keys(settings: Settings) -> dict[str, list[dict[str, str]]]:
    """Public keys a verifier needs, as a JWKS: the JWT/CAT dialects' keys and our own Ed25519 keys.

    HMAC keys are secrets and never appear here.
    """
    keys: list[dict[str, str]] = []
    for dialect in settings.cdn.values():
        jwks = getattr(dialect, "jwks", None)
        if callable(jwks):
            keys.extend(jwks()["keys"])
    for key in settings.keys.keys:
        if isinstance(key, Ed25519Key):
            keys.append({"kty": "OKP", "crv": "Ed25519", "kid": key.key_id, "x": b64url_encode(key.public_bytes())})
    return {"keys": keys}


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
    origin = OriginClient(settings.origin, transport=origin_transport, clock=clock)
    if revocations is None:
        revocations = RedisRevocations(settings.redis_url) if settings.redis_url else MemoryRevocations()
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

    async def jwks(_: Request) -> Response:
        return JSONResponse(published_keys(settings), headers={"cache-control": "public, max-age=300"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await origin.aclose()
        if isinstance(revocations, RedisRevocations):
            revocations.close()

    app = Starlette(
        routes=[
            Route("/_gateway/health", health, methods=["GET"]),
            Route("/_gateway/metrics", metrics, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            *session_routes(sessions, clock),
            *extra_routes,
            Route("/{path:path}", edge.handle, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.state.edge = edge
    app.state.sessions = sessions
    return app
