"""The Starlette application: wires settings, the origin client and the edge. Routes stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import Settings
from gateway.http.api import session_routes
from gateway.http.cors import CorsPolicy, apply, decide
from gateway.http.edge import Clock, Edge
from gateway.http.errors import ErrorAnswers, ReportedErrors, exception_handlers
from gateway.http.health import Readiness, healthz
from gateway.http.observe import EDGE, Observer
from gateway.http.request_facts import header
from gateway.http.verdict import VERDICT_PATH, Verdicts, verdict_endpoint
from gateway.origin.client import OriginClient
from gateway.sessions.entitlements import EntitlementPolicy
from gateway.sessions.revocations import (
    FIRST_SYNC_WAIT_SECONDS,
    MemoryRevocations,
    RedisRevocations,
    RevocationStore,
)
from gateway.sessions.service import SessionService
from gateway.sessions.streams import build_stream_watch
from gateway.sessions.webhook import EntitlementWebhook
from gateway.telemetry.metrics import exposition, process_exited


def published_keys(settings: Settings) -> dict[str, list[dict[str, str]]]:
    """Public keys a verifier needs, as a JWKS: every dialect's (JWT and CAT ES256 keys) and our own Ed25519
    keys. HMAC keys are secrets and never appear here."""
    keys = [key for dialect in settings.dialects.values() for key in dialect.jwks()["keys"]]
    return {"keys": keys + settings.keys.public_jwks()}


INTERNAL_PREFIX = "/_gateway/"  # health, readiness and metrics: for operators, never opened to other sites
# The conventional names of the same endpoints (Kubernetes probes, Prometheus' default metrics_path).
OPERATOR_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
EDGE_PATH = "/{path:path}"


class CorsMiddleware:
    """Applies `gateway.http.cors` to every HTTP response and answers preflights (raw ASGI: on the hot path).

    Preflights are answered here, before any route: they carry no token and must never reach the edge's
    verifier or the origin. The methods a preflight allows are those of the routes matching the path.
    """

    def __init__(self, app: ASGIApp, policy: CorsPolicy, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.policy = policy
        self.routes = routes

    def route_methods(self, path: str) -> list[str]:
        found: set[str] = set()
        for route in self.routes:
            if isinstance(route, Route) and route.methods and route.path_regex.match(path):
                found |= route.methods
        return sorted(found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(INTERNAL_PREFIX) or scope["path"] in OPERATOR_PATHS:
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        request_method = header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and request_method is not None:
            answer = decide(
                self.policy,
                origin=origin,
                method="OPTIONS",
                request_method=request_method,
                route_methods=self.route_methods(scope["path"]),
            )
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = apply(self.policy, origin=origin, method=scope["method"], headers=message.get("headers", ()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


class _GatewayApp(Starlette):
    """Starlette with the observer (request id, request counter; gateway/http/observe.py) outermost, CORS inside
    it, so every error response, a 500 included, is readable cross-site and carries its request id; inside
    those, the 500s the exception-handler map answered stop (gateway/http/errors.py)."""

    cors_policy = CorsPolicy()
    route_kinds: Mapping[str, str] = MappingProxyType({})

    def build_middleware_stack(self) -> ASGIApp:
        inner = CorsMiddleware(ReportedErrors(super().build_middleware_stack()), self.cors_policy, self.routes)
        return Observer(inner, self.route_kinds)


def _route_kinds(session_api: Sequence[BaseRoute]) -> dict[str, str]:
    """Each route's kind in `gateway_requests_total{kind}`; the edge's is decided per path (manifest, segment)."""
    kinds = {path: "internal" for path in OPERATOR_PATHS}
    kinds |= {f"{INTERNAL_PREFIX}{name}": "internal" for name in ("health", "ready", "metrics")}
    kinds |= {VERDICT_PATH: "verdict", "/.well-known/jwks.json": "keys", EDGE_PATH: EDGE}
    kinds |= {route.path: "session_api" for route in session_api if isinstance(route, Route)}
    return kinds


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
    streams = build_stream_watch(settings, revocations)  # [sessions] max_streams, [sharing]
    edge = Edge(settings, origin, clock=clock, revocations=revocations, streams=streams)
    webhook = EntitlementWebhook(settings.entitlements) if settings.entitlements.webhook_url else None
    sessions = SessionService(settings, policy or settings.catalog, revocations, webhook)
    answers = ErrorAnswers(settings)
    verdicts = Verdicts(edge, settings.proxy_trust, settings.origin.auth_secret, clock)
    readiness = Readiness(settings, origin, revocations)

    async def metrics(_: Request) -> Response:
        # Rendering every series is CPU work (~1 ms per few hundred series): off the loop, as scrapes are rare.
        body, content_type = await asyncio.to_thread(exposition)
        return Response(body, headers={"content-type": content_type, "cache-control": "no-store"})

    async def jwks(_: Request) -> Response:
        return JSONResponse(published_keys(settings), headers={"cache-control": "public, max-age=300"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if isinstance(revocations, RedisRevocations):
            # Serve with the shared set when Redis answers; if it does not, start anyway (bounded wait, off the loop).
            await asyncio.to_thread(revocations.wait_first_sync, FIRST_SYNC_WAIT_SECONDS)
        yield
        await origin.aclose()
        await streams.aclose()
        if webhook is not None:
            await webhook.aclose()
        await asyncio.to_thread(revocations.close)  # Redis: may write what is queued (one socket timeout at most)
        process_exited(os.getpid())

    api = session_routes(sessions, clock, streams)
    metrics_routes = (
        [Route("/metrics", metrics, methods=["GET"]), Route(f"{INTERNAL_PREFIX}metrics", metrics, methods=["GET"])]
        if settings.metrics.on_main_port
        else []
    )
    app = _GatewayApp(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readiness.endpoint, methods=["GET"]),
            Route(f"{INTERNAL_PREFIX}health", healthz, methods=["GET"]),  # the names before /healthz, /readyz
            Route(f"{INTERNAL_PREFIX}ready", readiness.endpoint, methods=["GET"]),
            *metrics_routes,
            Route(VERDICT_PATH, verdict_endpoint(verdicts, answers), methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            *api,
            *extra_routes,
            Route(EDGE_PATH, edge.handle, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
        exception_handlers=exception_handlers(answers),
    )
    app.cors_policy = settings.cors
    app.route_kinds = _route_kinds(api)
    app.state.edge = edge
    app.state.sessions = sessions
    return app
