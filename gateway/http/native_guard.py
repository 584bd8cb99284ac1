"""The guard for the gateway's own tokens (query, cookie, hybrid, path and CDN routes).

A token found anywhere (path, query, cookie: gateway/http/delivery.py) is verified for the request's path,
client address and scope (a manifest needs a playlist-opening token, anything else a media-opening one);
signatures are cached, so a session's segment requests only re-check the claims. A revoked session is
refused whatever its tokens say.
"""

from __future__ import annotations

from gateway.config import Route, Settings
from gateway.errors import Denial, TokenDenied
from gateway.http.access import Access, Incoming, origin_url_for
from gateway.http.media_types import is_manifest, may_be_remote_element
from gateway.http.request_facts import client_address, upstream_params, upstream_query
from gateway.sessions.revocations import RevocationStore
from gateway.tokens.grant import Scope
from gateway.tokens.native import TokenVerifier


class NativeGuard:
    """One route's guard; the verifier (and its signature cache) is shared by every route."""

    def __init__(
        self, route: Route, settings: Settings, *, verifier: TokenVerifier, revocations: RevocationStore
    ) -> None:
        self.settings = settings
        self.verifier = verifier
        self.revocations = revocations
        # What this route sends upstream: the allow-listed query parameters, fixed at start-up.
        self.forwarded = upstream_params(
            route.forward_query, delta_updates=settings.delta_updates, token_params=settings.token_params
        )

    def admit(self, incoming: Incoming) -> Access:
        token = incoming.found.token
        if not token:
            raise TokenDenied(
                Denial.MISSING, f"no token (query parameter {self.settings.token_param!r}, cookie or path)"
            )
        path, now, scope = incoming.path, incoming.now, incoming.scope
        client_ip = client_address(scope, self.settings.proxy_trust)
        needed = Scope.PLAYLIST if is_manifest(path.decoded) else Scope.MEDIA
        remote_element = False
        try:
            grant = self.verifier.verify(token, path=path, client_ip=client_ip, needed_scope=needed, now=now)
        except TokenDenied as denial:
            # The token the gateway writes on an xlink:href is playlist-scoped: the fragment is an MPD's part.
            if not (
                denial.reason is Denial.SCOPE
                and denial.values.get("token_scope") == Scope.PLAYLIST.value
                and may_be_remote_element(path.decoded)
            ):
                raise
            grant = self.verifier.verify(token, path=path, client_ip=client_ip, needed_scope=Scope.PLAYLIST, now=now)
            remote_element = True
        if grant.session_id is not None and self.revocations.is_revoked(grant.session_id, now):
            raise TokenDenied(Denial.REVOKED, f"session {grant.session_id} was revoked", {"session": grant.session_id})
        query = upstream_query(scope.get("query_string", b"").decode("latin-1"), self.forwarded)
        origin_url = origin_url_for(incoming.route, path, query)
        return Access(incoming, grant, path, origin_url, token, remote_element=remote_element)
