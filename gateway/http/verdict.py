"""The verdict for an nginx front: nginx serves or proxies segment bytes itself and asks the gateway only
whether a request may have them (`auth_request`), so segments cost what nginx costs.

    nginx ── GET /_gateway/verdict, X-Original-URI: <the client's request target>,
             X-Original-Method, the client's own headers (cookies), X-Forwarded-For: <client> ──▶ gateway
    gateway ── the request rebuilt as the client sent it, judged by the one gate every request passes
               (gateway/http/gate.py) ──▶ 204, or the typed refusal

A 204 carries what nginx needs and nothing a client sees:

    x-origin-url           where to fetch the bytes: the checked path and allow-listed query, exactly what
                           the gateway itself would have asked the origin for (the ACL boundary holds)
    x-gateway-origin-auth  the authenticated origin header, when origin protection is configured
    cache-control          max-age: how long nginx may reuse the verdict — VERDICT_CACHE_SECONDS at most, and
                           never past the token's expiry (the cache key is the whole request target, the
                           client address and the cookies, so a verdict is never reused for another)

A manifest's verdict (asked with `X-Front-Manifest`, from the front's manifest location) carries no origin URL:
the front proxies manifests to the gateway, or serves identical ones from its cache under the key the verdict
gives (gateway/http/front_cache.py).

A refusal keeps the gateway's shape (JSON body, `x-token-denial`/`x-gateway-error`), but `auth_request`
only passes 401 and 403 on (any other status becomes nginx's 500), so other refusals (no route, a malformed
target, overload) are answered 403 with their own status in `x-verdict-status`. Only trusted proxies
(`trusted_proxies`) may ask: the verdict believes the forwarded client address.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import httpx
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, GatewayError
from gateway.http.access import Access, AsgiScope
from gateway.http.edge import Edge
from gateway.http.errors import ErrorAnswers
from gateway.http.front_cache import MANIFEST_ASKED, MANIFEST_KEY, manifest_key
from gateway.http.request_facts import ProxyTrust, header, peer_address
from gateway.origin.auth import HEADER as ORIGIN_AUTH_HEADER
from gateway.origin.auth import origin_auth_header

VERDICT_PATH = "/_gateway/verdict"
VERDICT_CACHE_SECONDS = 5  # how stale a revocation may be at the front; also bounds a verdict's reuse
ORIGINAL_URI = b"x-original-uri"
ORIGINAL_METHOD = b"x-original-method"
PASSED_ON = frozenset({401, 403})  # what nginx's auth_request hands the client; anything else becomes its 500


class FrontOnly(GatewayError):
    """The verdict endpoint asked by a peer that is not a trusted proxy (it believes forwarded addresses)."""

    code = "front_only"
    status = 403


class FrontMisrouted(GatewayError):
    """The front asked for a manifest's verdict where it would fetch the manifest from the origin (its segment
    location): manifests are rewritten by the gateway, so they are proxied to it (or served from the front's
    manifest cache, which the gateway fills), asked for with `X-Front-Manifest` (gateway/http/front_cache.py)."""

    code = "front_misrouted"
    status = 400


class Verdicts:
    """Answers `GET /_gateway/verdict` through the edge's gate."""

    def __init__(
        self,
        edge: Edge,
        trust: ProxyTrust,
        origin_auth_secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.edge = edge
        self.gate = edge.gate
        self.trust = trust
        self.origin_auth_secret = origin_auth_secret
        self.clock = clock

    async def judge(self, scope: AsgiScope) -> Response:
        """204 with the headers the front needs, or the typed refusal raised."""
        peer = peer_address(scope)
        if peer is None or not self.trust.trusts(peer):
            raise FrontOnly("the verdict endpoint answers the configured trusted_proxies only")
        now = self.clock()
        access = self.gate.admit(original_request(scope), now)
        if access.is_manifest:
            if header(scope, MANIFEST_ASKED) is None:
                raise FrontMisrouted(
                    f"{access.resource.decoded} is a manifest: the front serves manifests from its manifest "
                    "location (proxied to the gateway), never from the origin"
                )
            return await self.manifest_verdict(access, now)
        return Response(status_code=204, headers=self.front_headers(access, now))

    async def manifest_verdict(self, access: Access, now: float) -> Response:
        """A manifest the front may serve to this viewer: from its cache under the returned key where the manifest
        is identical for every viewer (with this viewer's cookie, as the gateway would have set it), else (no key)
        proxied to the gateway and never stored."""
        response = Response(status_code=204, headers=dict(access.headers))
        response.headers["cache-control"] = self.reuse(access, now)
        writer = self.edge.writers[access.route.mount]
        if not writer.identical:
            return response
        response.headers[MANIFEST_KEY] = manifest_key(writer, access)
        if writer.shared:
            return response  # no cookie to hand out
        # The cookie's life depends on the manifest's kind (VOD or live), the same in every version: any copy
        # will do, so a verdict never fetches the origin once this instance has prepared the manifest.
        variant = writer.variant(access)
        manifest = self.edge.manifests.peek(access.origin_url, variant)
        if manifest is None:
            manifest = await self.edge.prepared(writer, access)
        cookies = writer.cookies(access, manifest)
        for cookie in cookies:
            response.headers.append("set-cookie", cookie)
        if cookies:
            response.headers["cache-control"] = "no-store"  # this viewer's cookie: never a reused verdict
        return response

    def reuse(self, access: Access, now: float) -> str:
        """How long nginx may reuse a verdict: VERDICT_CACHE_SECONDS at most, never past the token's expiry."""
        if access.redirect_status is not None:  # a renewal by redirect cannot be answered through auth_request
            return "no-store"
        lifetime = min(VERDICT_CACHE_SECONDS, math.floor(access.grant.expires_at - now))
        return f"max-age={lifetime}" if lifetime > 0 else "no-store"

    def front_headers(self, access: Access, now: float) -> dict[str, str]:
        headers = dict(access.headers)  # a renewal header (CAT) the front passes on
        headers["x-origin-url"] = access.origin_url
        if self.origin_auth_secret:
            target = httpx.URL(access.origin_url).raw_path.decode("ascii")  # as the origin client signs it
            method = "HEAD" if access.head else "GET"
            auth = origin_auth_header(self.origin_auth_secret, method=method, target=target, now=now)
            headers[ORIGIN_AUTH_HEADER] = auth
        headers["cache-control"] = self.reuse(access, now)
        return headers


def original_request(scope: AsgiScope) -> AsgiScope:
    """The client's request as nginx describes it: its method and target, the headers it sent (nginx's
    auth_request forwards them, cookies included) and the connection's peer (the front, trusted for the
    client address it forwards)."""
    received: list[tuple[bytes, bytes]] = scope["headers"]
    headers = [(name, value) for name, value in received if name not in (ORIGINAL_URI, ORIGINAL_METHOD)]
    described = dict(received)
    target: bytes = described.get(ORIGINAL_URI, b"")
    if not target.startswith(b"/"):
        raise BadRequest("the front must send the client's request target in X-Original-URI")
    raw_path, _, query = target.partition(b"?")
    method = described.get(ORIGINAL_METHOD, b"GET").decode("latin-1").upper()
    return {
        **scope,
        "method": method,
        "path": unquote(raw_path.decode("latin-1"), encoding="utf-8", errors="surrogateescape"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
    }


def as_front_answer(response: Response) -> Response:
    """A refusal as `auth_request` can pass it on: 401 and 403 as they are, anything else as 403."""
    if response.status_code in PASSED_ON:
        return response
    response.headers["x-verdict-status"] = str(response.status_code)
    response.status_code = 403
    return response


def verdict_endpoint(verdicts: Verdicts, answers: ErrorAnswers) -> Callable[[Request], Awaitable[Response]]:
    """The route's endpoint: a verdict, or the refusal in the one error shape, as the front can pass it on."""

    async def verdict(request: Request) -> Response:
        try:
            return await verdicts.judge(request.scope)
        except GatewayError as error:
            return as_front_answer(answers.answer(request, error))

    return verdict
