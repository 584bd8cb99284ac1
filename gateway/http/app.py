"""The Starlette application: wires settings, the origin client and the edge. Routes stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import Settings
from gateway.http.api import session_routes
from gateway.http.cors import CorsPolicy, apply, decide
from gateway.http.edge import Clock, Edge
from gateway.http.errors import ErrorAnswers, ReportedErrors, exception_handlers
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


def published_keys(settings: Settings) -> dict[str, list[dict[str, str]]]:
    """Public keys a verifier needs, as a JWKS: every dialect's (JWT and CAT ES256 keys) and our own Ed25519
    keys. HMAC keys are secrets and never appear here."""
    keys = [key for dialect in settings.dialects.values() for key in dialect.jwks()["keys"]]
    return {"keys": keys + settings.keys.public_jwks()}


INTERNAL_PREFIX = "/_gateway/"  # health, readiness and metrics: for operators, never opened to other sites
NO_STORE = {"cache-control": "no-store"}


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
        if scope["type"] != "http" or scope["path"].startswith(INTERNAL_PREFIX):
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
    """Starlette with CORS as its outermost layer, so every error response, a 500 included, is readable
    cross-site; inside it, the 500s the exception-handler map answered stop (gateway/http/errors.py)."""

    cors_policy = CorsPolicy()

    def build_middleware_stack(self) -> ASGIApp:
        return CorsMiddleware(ReportedErrors(super().build_middleware_stack()), self.cors_policy, self.routes)


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
    denials: Counter[str] = Counter()  # by reason, edge and session API alike (counted where they are answered)
    answers = ErrorAnswers(settings, denials)
    verdicts = Verdicts(edge, settings.proxy_trust, settings.origin.auth_secret, clock)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok\n")  # liveness: the process serves, whatever Redis does

    async def ready(_: Request) -> Response:
        # Readiness: in sync with the shared revocations. A load balancer may prefer ready instances; one that
        # is not still serves, enforcing what it knows (its own revocations at once).
        reason = revocations.not_ready_reason() if isinstance(revocations, RedisRevocations) else None
        if reason is not None:
            return JSONResponse({"ready": False, "reason": reason}, status_code=503, headers=NO_STORE)
        return JSONResponse({"ready": True}, headers=NO_STORE)

    async def metrics(_: Request) -> Response:
        lines = [f'gateway_denials_total{{reason="{reason}"}} {count}' for reason, count in sorted(denials.items())]
        lines.append(f"gateway_manifest_origin_fetches_total {edge.manifests.origin_fetches}")
        return PlainTextResponse("\n".join(lines) + "\n")

    async def jwks(_: Request) -> Response:
        return JSONResponse(published_keys(settings), headers={"cache-control": "public, max-age=300"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if isinstance(revocations, RedisRevocations):
            # Serve with the shared set when Redis answers; if it does not, start anyway (bounded wait, off the loop).
            await asyncio.to_thread(revocations.wait_first_sync, FIRST_SYNC_WAIT_SECONDS)
        yield
        await origin.aclose()
        await asyncio.to_thread(revocations.close)  # Redis: may write what is queued (one socket timeout at most)

    app = _GatewayApp(
        routes=[
            Route("/_gateway/health", health, methods=["GET"]),
            Route("/_gateway/ready", ready, methods=["GET"]),
            Route("/_gateway/metrics", metrics, methods=["GET"]),
            Route(VERDICT_PATH, verdict_endpoint(verdicts, answers), methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            *session_routes(sessions, clock),
            *extra_routes,
            Route("/{path:path}", edge.handle, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
        exception_handlers=exception_handlers(answers),
    )
    app.cors_policy = settings.cors
    app.state.edge = edge
    app.state.sessions = sessions
    return app
