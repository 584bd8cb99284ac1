"""Viewing sessions: entitlement-checked issue, refresh and revocation of title-prefix grants.

Stateless: a session is its signed grant (session id, user, prefix, network, hard cap). Only revocations
are stored. One signature per session or renewal, never per URI.

Who may watch: the policy (the `[[users]]` / `[[titles]]` catalog) or, when `[entitlements] webhook_url`
is set, the application's backend (gateway/sessions/webhook.py), asked at create and at every refresh. The
catalog still names the credentials it knows; any other credential goes to the backend to resolve.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.config import Route, Settings
from gateway.config_schema import Delivery
from gateway.errors import Denial, TokenDenied
from gateway.http.media_types import is_manifest
from gateway.sessions.entitlements import EntitlementPolicy, EntitlementRefused, Refusal, Viewer
from gateway.sessions.revocations import RevocationStore
from gateway.sessions.webhook import EntitlementWebhook, Question
from gateway.telemetry.audit import token_issued
from gateway.telemetry.metrics import REVOCATIONS, TOKENS_ISSUED, TOKENS_RENEWED
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant, IPAddress, IPNetwork, Scope, network_around
from gateway.tokens.native import sign_grant, verify_signature

API_PREFIX = "/api/sessions"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the session API hands out (create and refresh)."""

    session_id: str
    token: str
    expires_at: int
    session_ends_at: int
    title_prefix: str
    mode: Delivery
    playback_url: str
    refresh_url: str
    grant: Grant = field(repr=False)  # what was signed: for the stream watcher, never sent to the client

    def as_json(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "grant"}


def client_network(address: IPAddress | None, settings: Settings) -> IPNetwork | None:
    if address is None or not settings.sessions.ip_binding:
        return None
    return network_around(address, settings.sessions.ipv4_prefix, settings.sessions.ipv6_prefix)


def content_path(gateway_path: str, route: Route) -> str:
    """Where `gateway_path` (under `route.mount`) lives on the origin: titles are named there, the same
    for every delivery mount (`/cookie/vod/x/` and `/vod/x/` are both the origin's `/vod/x/`)."""
    return urlsplit(route.origin).path + gateway_path[len(route.mount) :]


class SessionService:
    def __init__(
        self,
        settings: Settings,
        policy: EntitlementPolicy,
        revocations: RevocationStore,
        webhook: EntitlementWebhook | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.revocations = revocations
        self.webhook = webhook

    def title_prefix(self, asset: str, route: Route) -> str:
        """The master's directory, or the first `title_root_depth` segments below the route's mount."""
        depth = self.settings.sessions.title_root_depth
        if depth:
            below = asset[len(route.mount) :].split("/")
            if len(below) <= depth:
                raise EntitlementRefused(Refusal.UNKNOWN_ASSET, f"{asset} is above the configured title depth")
            return route.mount + "/".join(below[:depth]) + "/"
        return posixpath.dirname(asset) + "/"

    async def create(
        self,
        *,
        credential: str | None,
        asset: str,
        client_ip: IPAddress | None,
        country: str | None,
        now: float,
        referer: str | None = None,
        user_agent: str | None = None,
    ) -> IssuedToken:
        viewer = self._authenticate(credential)
        try:
            checked = normalise_path(asset.encode("utf-8"))
        except TokenDenied as exc:
            raise EntitlementRefused(Refusal.UNKNOWN_ASSET, f"asset is not a plain path: {exc.detail}") from exc
        route = self.settings.route_for(checked.decoded)
        if route is None or not is_manifest(checked.decoded) or checked.decoded == route.mount:
            raise EntitlementRefused(Refusal.UNKNOWN_ASSET, f"{asset} is not a master playlist behind this gateway")
        # Entitlements judge exactly what the grant will cover (never a title named somewhere in the path).
        prefix = self.title_prefix(checked.decoded, route)
        # The title's Referer / User-Agent rules, as the gate applies them to its playlists (gateway/http/gate.py).
        self.settings.catalog.check_client(content_path(prefix, route), referer, user_agent)
        if self.webhook is None:
            assert viewer is not None  # without a webhook, `_authenticate` refuses whom the policy does not know
            self.policy.check(viewer, content_path(prefix, route), country)
            user_id = viewer.user_id
        else:
            verdict = await self.webhook.decide(
                Question(
                    purpose="create",
                    user_id=None if viewer is None else viewer.user_id,
                    credential=None if viewer else credential,
                    asset=content_path(checked.decoded, route),
                    title_prefix=content_path(prefix, route),
                    client_ip=client_ip,
                    country=country,
                    request_id=secrets.token_hex(8),
                ),
                now=now,
            )
            user_id = viewer.user_id if viewer else verdict.user_id or _credential_user(credential or "")
        ends = int(now) + self.settings.sessions.max_life_seconds
        grant = Grant(
            path_prefixes=(prefix,),
            expires_at=self._expiry(route, now, ends),
            client_network=client_network(client_ip, self.settings),
            session_id=secrets.token_urlsafe(6),
            user_id=user_id,
            scope=Scope.ALL,
            session_ends_at=ends,
        )
        return self._issue(grant, route, checked.encoded, event="token_issued", client=client_ip)

    def _authenticate(self, credential: str | None) -> Viewer | None:
        """The policy's viewer; None for a credential only the webhook's backend can resolve."""
        try:
            return self.policy.authenticate(credential)
        except EntitlementRefused:
            if self.webhook is None or not credential:
                raise
            return None

    async def refresh(
        self,
        *,
        session_id: str,
        token: str,
        client_ip: IPAddress | None,
        country: str | None,
        now: float,
        path: str | None = None,
    ) -> IssuedToken:
        """A fresh token for the same grant while entitled, not revoked and under the session's cap.

        `path`: the decoded path of a URL the token came with, needed by a path-bound (playlist) token."""
        grant = self._session_grant(session_id, token, client_ip, now, path=path)
        prefix = grant.path_prefixes[0]
        route = self.settings.route_for(prefix)
        if route is None:
            raise EntitlementRefused(Refusal.UNKNOWN_ASSET, f"no route serves {prefix} any more")
        if self.webhook is not None:
            title = content_path(prefix, route)
            question = Question("refresh", grant.user_id, None, title, title, client_ip, country, secrets.token_hex(8))
            await self.webhook.decide(question, now=now)
        else:
            viewer = self.policy.viewer(grant.user_id or "")
            if viewer is None:
                raise EntitlementRefused(Refusal.NOT_ENTITLED, "the session's user no longer exists")
            self.policy.check(viewer, content_path(prefix, route), country)
        assert grant.session_ends_at is not None
        renewed = dataclasses.replace(grant, expires_at=self._expiry(route, now, grant.session_ends_at), key_id=None)
        return self._issue(renewed, route, prefix, event="token_renewed", client=client_ip)

    def revoke(self, *, session_id: str, token: str, now: float, path: str | None = None) -> Grant:
        """Revoke the session; returns its grant (whose stream slot the caller frees)."""
        grant = self._session_grant(session_id, token, None, now, check_ip=False, path=path)
        assert grant.session_ends_at is not None
        self.revocations.revoke(session_id, grant.session_ends_at + self.settings.leeway_seconds)
        REVOCATIONS.inc()
        return grant

    def _session_grant(
        self,
        session_id: str,
        token: str,
        client_ip: IPAddress | None,
        now: float,
        *,
        check_ip: bool = True,
        path: str | None = None,
    ) -> Grant:
        grant = verify_signature(token, self.settings.keys, path)  # signature only: an expired token may refresh
        if grant.session_id != session_id or grant.session_ends_at is None:
            raise TokenDenied(Denial.SCOPE, "the token does not belong to this session")
        if grant.scope is Scope.MEDIA:
            # A media token is what leaks with a segment URL: it must die with its short life, so it can
            # neither be turned into a fresh session token nor end the viewer's session.
            raise TokenDenied(
                Denial.SCOPE,
                "a media token (from a segment URL) cannot refresh or revoke a session; send the "
                "session or playlist token",
            )
        if now > grant.session_ends_at:
            raise TokenDenied(
                Denial.SESSION_ENDED,
                f"session ended at {grant.session_ends_at} (its maximum life), now {int(now)}",
                {"session_ends_at": grant.session_ends_at, "now": int(now)},
            )
        if self.revocations.is_revoked(session_id, now):
            raise TokenDenied(Denial.REVOKED, f"session {session_id} was revoked")
        if check_ip and grant.client_network is not None and (client_ip is None or not grant.admits(client_ip)):
            raise TokenDenied(Denial.IP, f"client {client_ip} is outside the session's network {grant.client_network}")
        return grant

    def _expiry(self, route: Route, now: float, ends: int) -> int:
        # Path and queryparam modes: every request carries the master's own token (inherited by relative URIs,
        # or handed on by the player from the manifest's URL), so it must live as long as the session.
        if route.delivery in (Delivery.PATH, Delivery.QUERYPARAM):
            return ends
        return min(int(now) + self.settings.sessions.token_ttl_seconds, ends)

    def _issue(
        self, grant: Grant, route: Route, asset_or_prefix: str, *, event: str, client: IPAddress | None
    ) -> IssuedToken:
        token = sign_grant(grant, self.settings.keys)
        (TOKENS_RENEWED if event == "token_renewed" else TOKENS_ISSUED).inc()
        token_issued(event, grant, key_id=self.settings.keys.signing_key.key_id, client=client)
        assert grant.session_id is not None and grant.session_ends_at is not None
        if route.delivery is Delivery.PATH:
            playback = "/t/" + token + asset_or_prefix
        elif route.delivery is Delivery.COOKIE:
            playback = asset_or_prefix
        else:
            playback = f"{asset_or_prefix}?{self.settings.token_param}={token}"
        return IssuedToken(
            session_id=grant.session_id,
            token=token,
            expires_at=grant.expires_at,
            session_ends_at=grant.session_ends_at,
            title_prefix=grant.path_prefixes[0],
            mode=route.delivery,
            playback_url=playback,
            refresh_url=f"{API_PREFIX}/{grant.session_id}/refresh",
            grant=grant,
        )


def _credential_user(credential: str) -> str:
    """A user id for a credential the backend resolved without naming the user: stable, and no secret."""
    return "c-" + hashlib.sha256(credential.encode()).hexdigest()[:16]
