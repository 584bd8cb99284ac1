"""The edge: the catch-all GET/HEAD endpoint. A dispatcher, not a decision-maker:

    request ──▶ gate (gateway/http/gate.py): route, then that route's guard ──▶ Access, or a typed denial
            ──▶ a manifest: prepared once per origin version by the route's writer (gateway/http/writers),
                rendered with this request's credentials
                anything else: streamed from the origin (gateway/http/stream.py)
            ──▶ the response, with the writer's cookies and the guard's headers

Every refusal and failure is raised as a typed error (gateway/errors.py) and answered by the app's one
exception-handler map (gateway/http/errors.py). The edge holds no per-session state: tokens carry it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response

from gateway.config import Settings
from gateway.http.access import Access
from gateway.http.download_slots import DownloadSlots, viewer_key
from gateway.http.front_cache import FRONT_FILL, fill_headers, from_front
from gateway.http.gate import Gate
from gateway.http.observe import KIND_KEY
from gateway.http.request_facts import client_address
from gateway.http.stream import stream_from_origin
from gateway.http.writers import (
    PRIVATE,
    ManifestWriter,
    manifest_response,
    prepare_manifest,
    shared_cache_control,
    writer_for,
)
from gateway.manifests.template import PreparedManifest
from gateway.origin.client import OriginClient
from gateway.origin.manifest_cache import ManifestCache
from gateway.sessions.revocations import MemoryRevocations, RevocationStore
from gateway.sessions.streams import StreamWatch, build_stream_watch
from gateway.telemetry.metrics import RENDER_SECONDS
from gateway.tokens.scoped import ScopedTokenMinter

Clock = Callable[[], float]


class Edge:
    def __init__(
        self,
        settings: Settings,
        origin: OriginClient,
        *,
        clock: Clock = time.time,
        revocations: RevocationStore | None = None,
        streams: StreamWatch | None = None,
    ):
        self.origin = origin
        self.clock = clock
        self.proxy_trust = settings.proxy_trust
        self.downloads = DownloadSlots(settings.origin.max_streams_per_client)
        self.max_manifest_bytes = settings.max_manifest_bytes
        revocations = revocations or MemoryRevocations()
        self.gate = Gate(settings, revocations)
        self.streams = streams or build_stream_watch(settings, revocations)
        self.manifests = ManifestCache(origin, settings.origin, max_bytes=settings.max_manifest_bytes)
        minter = ScopedTokenMinter(settings.keys, media_ttl_seconds=settings.sessions.media_ttl_seconds)
        self.writers = {route.mount: writer_for(route, settings, minter) for route in settings.routes}

    async def handle(self, request: Request) -> Response:
        access = self.gate.admit(request.scope, self.clock())  # raw ASGI scope: no Starlette accessors
        if access.redirect_status is not None:  # a renewal by redirect (CAT's catr): nothing else is served
            return Response(status_code=access.redirect_status, headers=dict(access.headers))
        writer = self.writers[access.route.mount]
        manifest: PreparedManifest | None = None
        if self.streams.enabled:  # every playlist fetch is a heartbeat (whoever serves segments), and so is ours
            client_ip = client_address(access.incoming.scope, self.proxy_trust)
            await self.streams.heartbeat(access.grant, client_ip, access.now)
        request.scope[KIND_KEY] = "manifest" if access.is_manifest else "segment"  # for the request counter
        if access.is_manifest:
            if writer.identical and from_front(access.incoming.scope, self.proxy_trust, FRONT_FILL):
                # Fresh through this whole second at least, or nginx could not keep it (it counts whole seconds).
                manifest = await self.prepared(writer, access, fresh_through=math.floor(access.now) + 1)
                return self.front_fill(writer, access, writer.render(manifest, access))
            manifest = await self.prepared(writer, access)
            started = perf_counter()
            body = writer.render(manifest, access)
            RENDER_SECONDS.observe(perf_counter() - started)
            if writer.shared:  # one manifest for every viewer: any cache may keep it while ours is fresh
                fresh = self.manifests.fresh_for(access.origin_url, writer.variant(access), now=access.now)
                response = manifest_response(
                    access.origin_url, body, head=access.head, cache_control=shared_cache_control(fresh)
                )
            else:
                response = manifest_response(access.origin_url, body, head=access.head)
        else:
            viewer = viewer_key(access.grant, access.incoming.scope, self.proxy_trust)
            response = await stream_from_origin(self.origin, access, self.downloads, viewer)
        for cookie in writer.cookies(access, manifest):
            response.headers.append("set-cookie", cookie)
        for name, value in access.headers:
            response.headers.append(name, value)
        return response

    def front_fill(self, writer: ManifestWriter, access: Access, body: bytes) -> Response:
        """An identical manifest for the nginx front's cache (gateway/http/front_cache.py): no viewer's cookie or
        renewal header in it (the verdict hands those to each viewer), kept no longer than our copy is fresh."""
        fresh = self.manifests.fresh_for(access.origin_url, writer.variant(access), now=access.now)
        kept = fill_headers(access.now + fresh, access.now)
        if not writer.shared:
            cache_control = PRIVATE
        elif "expires" in kept:  # nginx replays it later with no Age: an absolute end, not a max-age
            cache_control = "public"
        else:
            cache_control = shared_cache_control(fresh)
        response = manifest_response(access.origin_url, body, head=access.head, cache_control=cache_control)
        response.headers.update(kept)
        return response

    def prepared(
        self, writer: ManifestWriter, access: Access, fresh_through: float = 0.0
    ) -> Awaitable[PreparedManifest]:
        """The manifest at `access.origin_url` as `writer` prepares it: fetched and rewritten once per origin
        version and writer variant (coalesced, revalidated), shared by every viewer. (Not a coroutine itself:
        the cache's is awaited directly, one frame less per playlist request.)"""
        origin_url = access.origin_url

        def prepare(body: bytes) -> PreparedManifest:
            declared = writer.declare(access, body)
            rewriter = writer.rewriter(access)
            max_bytes = self.max_manifest_bytes
            return prepare_manifest(origin_url, declared, rewriter, max_bytes=max_bytes, route=access.route)

        variant = writer.variant(access)
        return self.manifests.get(origin_url, variant, prepare, now=access.now, fresh_through=fresh_through)
