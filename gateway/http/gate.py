"""Everything `serve` checks before the origin is contacted, in one object: `serve` (the edge) and
`gateway verify` (the CLI) both judge a request through it, so they cannot disagree.

    raw ASGI scope → the gateway's token, if any (path, query, cookie) → the path normalised (ACL boundary)
                   → the route with the longest mount (none: `no_route`) → that route's guard → Access
                   → a playlist: its title's Referer / User-Agent rules (`referer_refused`, `user_agent_refused`)
"""

from __future__ import annotations

from gateway.config import Settings
from gateway.errors import NoRoute
from gateway.http.access import Access, AsgiScope, Guard, Incoming
from gateway.http.delivery import find_token
from gateway.http.dialect_edge import DialectGuard
from gateway.http.native_guard import NativeGuard
from gateway.http.request_facts import header
from gateway.sessions.revocations import RevocationStore
from gateway.sessions.service import content_path
from gateway.tokens.acl import normalise_path
from gateway.tokens.native import TokenVerifier


class Gate:
    """The routes' guards, built once at start-up: a dialect's edge where a route names one, else ours."""

    def __init__(self, settings: Settings, revocations: RevocationStore) -> None:
        self.settings = settings
        verifier = TokenVerifier(settings.keys, leeway_seconds=settings.leeway_seconds)
        self.guards: dict[str, Guard] = {
            route.mount: DialectGuard(route, settings.dialects[route.edge], settings)
            if route.edge
            else NativeGuard(route, settings, verifier=verifier, revocations=revocations)
            for route in settings.routes
        }
        self.client_rules = settings.catalog.has_client_rules  # none configured: nothing to look up per request

    def read(self, scope: AsgiScope, now: float) -> Incoming:
        """The request before any guard: raises `no_route`, or a denial for a path that cannot be normalised."""
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        sessions = self.settings.sessions
        found = find_token(scope, raw_path, param=self.settings.token_param, cookie_name=sessions.cookie_name)
        path = normalise_path(found.raw_path)
        route = self.settings.route_for(path.decoded)
        if route is None:
            raise NoRoute(f"no origin is configured for {path.decoded}")
        return Incoming(scope, raw_path, found, path, route, now)

    def admit(self, scope: AsgiScope, now: float) -> Access:
        """What this request may do (raises the typed refusal otherwise)."""
        incoming = self.read(scope, now)
        access = self.guards[incoming.route.mount].admit(incoming)
        if self.client_rules and access.is_manifest:
            # Playlists only: they always come from the gateway (segments may come from a CDN), and a player
            # that may not load them plays nothing. The same rules as at session creation (SessionService.create).
            self.settings.catalog.check_client(
                content_path(access.resource.decoded, access.route),
                header(scope, b"referer"),
                header(scope, b"user-agent"),
            )
        return access
