"""The edge: verify every request before the origin is contacted, then serve a rewritten playlist or
stream the origin's bytes through.

    GET /<path>?token=…  → normalise path (ACL boundary) → route → verify token → origin
                            playlists: prepared once per origin version, rendered with this request's tokens
                            everything else: streamed, never buffered
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.config import Route, Settings
from gateway.config_schema import Delivery
from gateway.errors import Denial, ManifestError, OriginBadStatus, OriginError, TokenDenied
from gateway.http.cdn import CdnBinding, CdnSigner, cdn_path, make_cdn_rewriter
from gateway.http.delivery import FoundToken, find_token, format_cookie, is_plain_http_localhost, set_cookie
from gateway.http.dialect_edge import EdgeDecision, decide, edge_request, per_url_grant
from gateway.http.links import Carry, make_edge_rewriter, make_path_token_rewriter, make_uri_rewriter
from gateway.http.media_types import content_type_for, is_hls_playlist, is_key, is_manifest
from gateway.http.request_facts import client_address, token_fingerprint, upstream_params, upstream_query
from gateway.manifests.dash import prepare_mpd
from gateway.manifests.hls import RewriteUri, prepare_playlist
from gateway.manifests.template import PreparedManifest, Slot
from gateway.origin.client import PASSTHROUGH_HEADERS, OriginClient
from gateway.origin.manifest_cache import ManifestCache
from gateway.sessions.revocations import MemoryRevocations, RevocationStore
from gateway.tokens.acl import CheckedPath, normalise_path
from gateway.tokens.grant import Grant, Scope
from gateway.tokens.native import TokenVerifier
from gateway.tokens.scoped import ScopedTokenMinter

log = logging.getLogger("gateway.http.edge")

FORWARDED_REQUEST_HEADERS = (b"range", b"if-range", b"if-none-match", b"if-modified-since")
PRIVATE = "private, no-store"
Clock = Callable[[], float]
AsgiScope = MutableMapping[str, Any]  # the raw ASGI scope


def prepare_manifest(origin_url: str, body: bytes, rewriter: RewriteUri, *, max_bytes: int) -> PreparedManifest:
    """HLS playlists and DASH MPDs share one slot model; the URL's extension picks the rewriter."""
    if is_hls_playlist(origin_url.split("?", 1)[0]):
        return prepare_playlist(body, rewriter, max_bytes=max_bytes)
    return prepare_mpd(body, rewriter, max_bytes=max_bytes)


def manifest_response(origin_url: str, body: bytes, *, head: bool) -> Response:
    """A tokenized manifest: never cached by anyone but this viewer."""
    headers = {"cache-control": PRIVATE, "content-type": content_type_for(origin_url.split("?", 1)[0])}
    return Response(b"" if head else body, headers=headers | {"content-length": str(len(body))})


def error_response(status: int, error: str, detail: str, *, denial: bool = False) -> JSONResponse:
    """A refusal a player can read: CORS headers (gateway/http/cors.py, applied by the app) expose the reason."""
    headers = {"x-token-denial" if denial else "x-gateway-error": error, "cache-control": "no-store"}
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


class Edge:
    """The catch-all GET/HEAD endpoint. Holds no per-session state: tokens carry it."""

    def __init__(
        self,
        settings: Settings,
        origin: OriginClient,
        *,
        clock: Clock = time.time,
        revocations: RevocationStore | None = None,
    ):
        self.settings = settings
        self.origin = origin
        self.clock = clock
        self.revocations = revocations or MemoryRevocations()
        self.verifier = TokenVerifier(settings.keys, leeway_seconds=settings.leeway_seconds)
        self.minter = ScopedTokenMinter(settings.keys, media_ttl_seconds=settings.sessions.media_ttl_seconds)
        self.manifests = ManifestCache(origin, settings.origin, max_bytes=settings.max_manifest_bytes)
        # One signer per CDN route; probing where the dialect puts credentials fails fast at start-up.
        self.cdn_signers = {
            route.mount: CdnSigner(
                CdnBinding.probe(settings.dialects[route.cdn], cdn_path(route, route.mount + "probe/")), route
            )
            for route in settings.routes
            if route.cdn
        }
        # What each route sends upstream: the allow-listed query parameters (issue 9.2), fixed at start-up.
        self.upstream_params = {
            route.mount: upstream_params(
                route.forward_query, delta_updates=settings.delta_updates, token_params=settings.token_params
            )
            for route in settings.routes
        }
        # Dialect-edge routes whose dialect signs one URL at a time: the URIs of the playlists they serve
        # are signed one by one, cached per URL and grant (gateway/http/dialect_edge.py).
        self.edge_signers = {
            route.mount: CdnSigner(CdnBinding(settings.dialects[route.edge], "per_url"), route)
            for route in settings.routes
            if route.edge and not settings.dialects[route.edge].prefix_signing
        }
        self.denials: Counter[str] = Counter()

    async def handle(self, request: Request) -> Response:
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        sessions = self.settings.sessions
        found = find_token(scope, raw_path, param=self.settings.token_param, cookie_name=sessions.cookie_name)
        decision: EdgeDecision | None = None
        request_url = ""
        try:
            checked = normalise_path(found.raw_path)
            route = self.settings.route_for(checked.decoded)
            if route is None:
                return error_response(404, "no_route", f"no origin is configured for {checked.decoded}")
            if route.edge:
                seen = edge_request(scope, raw_path, self.settings.proxy_trust)
                request_url = seen.url
                decision = decide(self.settings.dialects[route.edge], seen, now=self.clock())
                grant = decision.grant
                checked = self.edge_resource(route, decision)
            else:
                grant = self.verify(checked, found, scope)
        except TokenDenied as denied:
            return self.deny(denied, raw_path, found.token, scope)
        if decision is not None and decision.redirect_status is not None:
            return Response(status_code=decision.redirect_status, headers=dict(decision.headers))
        # Only allow-listed parameters go upstream, so the origin URL (the manifest cache key) is the same
        # for every viewer whatever junk or token a request carries; on a dialect edge the dialect's own
        # parameters are gone before that (they are not in the allow-list either).
        raw_query = scope.get("query_string", b"").decode("latin-1") if decision is None else decision.upstream_query
        query = upstream_query(raw_query, self.upstream_params[route.mount])
        origin_url = route.origin_url(checked.encoded) + (f"?{query}" if query else "")
        cookies: list[str] = []
        try:
            if is_manifest(checked.decoded) and decision is not None:
                response = await self.dialect_playlist(
                    route, origin_url, checked, decision, request_url, head=scope["method"] == "HEAD"
                )
            elif is_manifest(checked.decoded):
                assert found.token is not None
                response, prepared = await self.playlist(
                    route, origin_url, checked.encoded, grant, found.token, head=scope["method"] == "HEAD"
                )
                cookies = self.cookies_for(route, grant, found, scope, prepared)
            else:
                response = await self.stream(checked, origin_url, scope)
                if decision is None:
                    cookies = self.cookies_for(route, grant, found, scope, None)
        except OriginBadStatus as exc:
            status = exc.status if exc.status in (404, 410, 416) else 502
            return error_response(status, "origin_status", str(exc))
        except OriginError as exc:
            log.warning("origin error: %s", exc)
            return error_response(exc.http_status, type(exc).__name__, str(exc))
        except ManifestError as exc:
            log.warning("origin playlist refused: %s (%s)", exc, origin_url.split("?")[0])
            return error_response(502, "bad_manifest", f"origin playlist refused: {exc}")
        for cookie in cookies:
            response.headers.append("set-cookie", cookie)
        for name, value in decision.headers if decision is not None else ():
            response.headers.append(name, value)
        return response

    def edge_resource(self, route: Route, decision: EdgeDecision) -> CheckedPath:
        """The resource a dialect-edge request names: it must stay under the route the request came in on."""
        checked = normalise_path(decision.path.resource)
        if not checked.decoded.startswith(route.mount):
            raise TokenDenied(
                Denial.ACL,
                f"{checked.decoded} is outside the route mounted at {route.mount}",
                {"path": checked.decoded},
            )
        return checked

    async def dialect_playlist(
        self,
        route: Route,
        origin_url: str,
        resource: CheckedPath,
        decision: EdgeDecision,
        request_url: str,
        *,
        head: bool,
    ) -> Response:
        """A playlist on a dialect-edge route: every URI carries what the same edge accepts (see `Carry`).

        Prepared once per origin version and way of carrying; per request only the credential is filled
        in, or (per-URL dialects) each URI signed, cached per URL and grant.
        """
        dialect = self.settings.dialects[route.edge]
        carry, mapped = decision.carry, decision.path.mapped

        def prepare(body: bytes) -> PreparedManifest:
            rewriter = make_edge_rewriter(
                manifest_origin_url=origin_url,
                manifest_path=resource.encoded,
                route=route,
                carry=carry,
                params=dialect.query_params,
                mapped=mapped,
            )
            return prepare_manifest(origin_url, body, rewriter, max_bytes=self.settings.max_manifest_bytes)

        variant = f"edge:{route.edge}:{carry.value}:{mapped or ''}"
        prepared = await self.manifests.get(origin_url, variant, prepare, now=self.clock())
        xml = not is_hls_playlist(origin_url.split("?", 1)[0])
        if carry is Carry.PER_URL:
            grant = per_url_grant(decision.grant, route.mount)
            signer = self.edge_signers[route.mount]
            body = signer.render_references(prepared, grant, base_url=request_url, xml=xml)
        else:
            credential = decision.credential.replace("&", "&amp;") if xml else decision.credential
            body = prepared.render({Slot.PLAYLIST: credential, Slot.MEDIA: credential})
        return manifest_response(origin_url, body, head=head)

    def verify(self, checked: CheckedPath, found: FoundToken, scope: AsgiScope) -> Grant:
        if not found.token:
            raise TokenDenied(
                Denial.MISSING, f"no token (query parameter {self.settings.token_param!r}, cookie or path)"
            )
        needed = Scope.PLAYLIST if is_manifest(checked.decoded) else Scope.MEDIA
        now = self.clock()
        grant = self.verifier.verify(
            found.token,
            path=checked,
            client_ip=client_address(scope, self.settings.proxy_trust),
            needed_scope=needed,
            now=now,
        )
        if grant.session_id is not None and self.revocations.is_revoked(grant.session_id, now):
            raise TokenDenied(Denial.REVOKED, f"session {grant.session_id} was revoked", {"session": grant.session_id})
        return grant

    def deny(self, denied: TokenDenied, raw_path: bytes, token: str | None, scope: AsgiScope) -> Response:
        self.denials[denied.reason.value] += 1
        log.info(
            "denied reason=%s path=%s client=%s token=%s detail=%s",
            denied.reason.value,
            raw_path[:200].decode("latin-1") if not raw_path.startswith(b"/t/") else "/t/…",
            client_address(scope, self.settings.proxy_trust),
            token_fingerprint(token) if token else "-",
            denied.detail,
        )
        return error_response(denied.http_status, denied.reason.value, denied.detail, denial=True)

    def cookies_for(
        self, route: Route, grant: Grant, found: FoundToken, scope: AsgiScope, manifest: PreparedManifest | None
    ) -> list[str]:
        """Cookie and hybrid modes: hand out the cookie on first use, and re-issue it before it expires.

        With a manifest the player uses unrenewed for the whole title (`manifest`, see
        `ScopedTokenMinter.lasts_the_session`) the cookie is re-issued to last until the session's cap.
        """
        if route.delivery not in (Delivery.COOKIE, Delivery.HYBRID) or found.source == "path":
            return []
        sessions = self.settings.sessions
        now = self.clock()
        ends = grant.session_ends_at
        until_cap = ends is not None and self.minter.lasts_the_session(manifest)
        lasts = grant.expires_at - now > sessions.token_ttl_seconds / 2 and (
            not until_cap or grant.expires_at >= (ends or 0)
        )
        if found.source == "cookie" and lasts:
            return []  # plenty of life left (and already until the cap where it must be)
        token = found.token or ""
        expires_at = grant.expires_at
        if ends is not None and (found.source == "cookie" or grant.scope is not Scope.ALL or until_cap):
            expires_at = ends if until_cap else min(int(now) + sessions.token_ttl_seconds, ends)
            token = self.minter.mint(dataclasses.replace(grant, scope=Scope.ALL, expires_at=expires_at, key_id=None))
        return [
            set_cookie(
                sessions.cookie_name,
                token,
                path=grant.path_prefixes[0],
                expires_at=expires_at,
                now=now,
                secure=not is_plain_http_localhost(scope),
                same_site=sessions.cookie_same_site,
                partitioned=sessions.cookie_partitioned,
            )
        ]

    async def playlist(
        self, route: Route, origin_url: str, gateway_path: str, grant: Grant, token: str, *, head: bool
    ) -> tuple[Response, PreparedManifest]:
        mode = route.delivery
        signer = self.cdn_signers.get(route.mount)

        def prepare(body: bytes) -> PreparedManifest:
            rewriter: RewriteUri
            if mode is Delivery.PATH:
                rewriter = make_path_token_rewriter(manifest_origin_url=origin_url, route=route)
            else:
                param = self.settings.token_param if mode is Delivery.QUERY else None
                rewriter = make_uri_rewriter(manifest_origin_url=origin_url, route=route, token_param=param)
            if signer is not None:
                rewriter = make_cdn_rewriter(
                    rewriter,
                    route=route,
                    binding=signer.binding,
                    manifest_origin_url=origin_url,
                    manifest_gateway_path=gateway_path,
                    token_param=self.settings.token_param,
                )
            return prepare_manifest(origin_url, body, rewriter, max_bytes=self.settings.max_manifest_bytes)

        now = self.clock()
        prepared = await self.manifests.get(origin_url, f"{mode}:{route.mount}:{route.cdn}", prepare, now=now)
        if mode is Delivery.QUERY:
            tokens = self.minter.slot_tokens(grant, token, prepared, now=now)
        else:
            tokens = {Slot.PLAYLIST: token, Slot.MEDIA: token}
        cookies: list[str] = []
        if signer is None:
            body = prepared.render(tokens)
        else:
            ends = grant.session_ends_at or grant.expires_at
            media_expiry = self.minter.media_expiry(now, ends, reloaded=prepared.reloaded)
            cdn_grant = signer.cdn_grant(grant, min(media_expiry, grant.expires_at, ends))
            body = signer.render(prepared, tokens, cdn_grant)
            cookies = [format_cookie(cookie, now=now) for cookie in signer.cookies(cdn_grant)]
        response = manifest_response(origin_url, body, head=head)
        for cookie in cookies:
            response.headers.append("set-cookie", cookie)
        return response, prepared

    async def stream(self, checked: CheckedPath, origin_url: str, scope: AsgiScope) -> Response:
        forwarded = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key in FORWARDED_REQUEST_HEADERS
        }
        upstream = await self.origin.send_stream(origin_url, forwarded)
        if upstream.status_code >= 400 and upstream.status_code != 416:
            await upstream.aclose()
            raise OriginBadStatus(
                f"origin answered {upstream.status_code} for {origin_url.split('?')[0]}", upstream.status_code
            )
        headers = {name: upstream.headers[name] for name in PASSTHROUGH_HEADERS if name in upstream.headers}
        headers["content-type"] = content_type_for(checked.decoded, upstream.headers.get("content-type"))
        if is_key(checked.decoded) or is_manifest(checked.decoded):
            headers["cache-control"] = PRIVATE
        if scope["method"] == "HEAD":
            await upstream.aclose()
            return Response(b"", status_code=upstream.status_code, headers=headers)
        return StreamingResponse(_relay(upstream), status_code=upstream.status_code, headers=headers)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """Pass origin bytes through as they arrive; a broken origin mid-body ends the response early."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("origin stream broke after headers: %s", type(exc).__name__)
    finally:
        await upstream.aclose()
