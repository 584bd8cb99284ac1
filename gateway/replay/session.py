"""The player's viewing session: the session API (create, refresh, revoke), requests, and denial recovery.

Renewal strategies (`PlayerSpec.renewal`):
- `rolling`: the player never renews anything itself; it relies on the playlist-scoped tokens in the
  master's URIs and the media tokens the gateway rolls forward in every media playlist (or the cookie it
  re-issues). Any player with no token logic behaves like this.
- `refresh`: like the hls.js demo page's `xhrSetup`: every request carries the newest session token, renewed
  through the refresh API at 75 % of its life, before a request when it is (nearly) expired, and once
  after a request refused `expired` (then the request is retried).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from gateway.replay.client import CookieJar, HttpSide, Reply, TokenBook, token_in_url, with_token
from gateway.replay.events import PlayerLog, RequestRecord
from gateway.replay.expectations import SESSION_OVER, DenialFacts, classify
from gateway.replay.scenario import IpChange, OnDenial, PlayerSpec, Scenario

REFRESH_AT = 0.75  # renew when 75 % of the token's life has passed (as the demo page does)
EXPIRY_MARGIN_SECONDS = 3.0
TERMINAL_REFRESH_ERRORS = frozenset({"revoked", "session_ended", "not_entitled", "geo_blocked", "unauthenticated"})
TOKEN_PARAM = "token"


class PlayerStopped(Exception):
    """The player stops for good (`state` ended: a normal end; stopped: it could not go on)."""

    def __init__(self, reason: str, *, expected: bool, state: str = "stopped") -> None:
        super().__init__(reason)
        self.reason, self.expected, self.state = reason, expected, state


class Rebuilt(Exception):
    """A new session replaced the old one: URLs of the current round carry stale tokens."""


@dataclass
class Session:
    id: str
    token: str
    issued_at: float  # scenario seconds, as are all times below
    expires_at: float
    ends_at: float
    created_at: float
    refresh_url: str
    mode: str
    playback_url: str
    revoked_at: float | None = None
    revoke_expected: bool = False
    can_refresh: bool = True


class PlayerSession:
    def __init__(
        self,
        spec: PlayerSpec,
        scenario: Scenario,
        http: HttpSide,
        *,
        base_url: str,
        start_epoch: float,
        clock: Callable[[], float],
    ) -> None:
        self.spec, self.scenario, self.http = spec, scenario, http
        self.base_url, self.start_epoch, self.clock = base_url, start_epoch, clock
        self.log = PlayerLog(spec.name)
        self.tokens = TokenBook(self.log, start_epoch)
        self.cookies = CookieJar()
        self.state = "new"  # new | playing | paused | ended | stopped | failed
        self.stop_reason = ""
        self.session: Session | None = None
        self.sessions = 0
        self.refreshes = 0
        self.denial_times: list[tuple[float, bool]] = []
        self.last_denial_expected = False
        self.last_ip_change: float | None = None
        self._ip_policy: OnDenial = "stop"
        self._recreated_for: float | None = None

    def now(self) -> float:
        return self.clock() - self.start_epoch

    async def load_master(self, t: float) -> None:
        raise NotImplementedError  # the player's part

    # ---- requests --------------------------------------------------------------------------------------
    async def fetch(self, url: str, kind: str, rendition: str | None) -> Reply | None:
        """GET with one retry after a recovery (refresh after `expired`); None if it failed."""
        for attempt in range(2):
            reply = await self._get(url, kind, rendition)
            if 0 < reply.status < 400:
                return reply
            if attempt == 0 and await self._recover(reply):
                continue
            return None
        return None

    async def _get(self, url: str, kind: str, rendition: str | None) -> Reply:
        t = self.now()
        session = self.session
        if session is not None and self.spec.renewal == "refresh":
            if session.can_refresh and session.expires_at - t < EXPIRY_MARGIN_SECONDS < session.ends_at - t:
                await self.refresh(t, "before_request")
            if token_in_url(url, TOKEN_PARAM) is not None:
                url = with_token(url, TOKEN_PARAM, session.token)
        path = urlsplit(url).path
        cookie = self.cookies.header(t, path)
        token = token_in_url(url, TOKEN_PARAM)
        from_cookie = token is None and cookie is not None
        if from_cookie:
            token = self.cookies.token(t, path)
        reply = await self.http.send("GET", url, headers={"cookie": cookie} if cookie else None)
        self.cookies.update(reply.set_cookies, self.now())
        self._record(t, kind, rendition, path, reply, token, from_cookie)
        return reply

    async def api(self, method: str, path: str, body: dict[str, Any], *, auth: bool = False) -> Reply:
        t = self.now()
        headers = {"authorization": f"Bearer {self.scenario.credential}"} if auth else {}
        reply = await self.http.send(method, urljoin(self.base_url, path), headers=headers, body=body)
        self.cookies.update(reply.set_cookies, self.now())
        self._record(t, "api", None, path, reply, None, False)
        return reply

    def _record(
        self, t: float, kind: str, rendition: str | None, path: str, reply: Reply, token: str | None, cookie: bool
    ) -> None:
        token_kind, expires, renewal = self.tokens.note(token, t, cookie=cookie) if token else (None, None, False)
        record = RequestRecord(
            t, self.spec.name, kind, rendition, reply.status, path, token_kind=token_kind, token_expires=expires
        )
        record.renewal = renewal
        reason = reply.denial
        if reason is not None:
            record.denial, record.detail = reason, str(reply.json().get("detail", ""))[:300]
            record.expected, record.why = self._classify(t, reason)
            self.denial_times.append((t, record.expected))
            self.last_denial_expected = record.expected
        else:
            record.error = reply.failure
            if record.error is not None:
                record.detail = str(reply.json().get("detail", ""))[:300]
        self.log.add(record)

    def _classify(self, t: float, reason: str) -> tuple[bool, str]:
        s = self.session
        facts = DenialFacts(
            t=t,
            reason=reason,
            player=self.spec.name,
            session_ends_at=s.ends_at if s else None,
            session_created_at=s.created_at if s else None,
            last_ip_change_at=self.last_ip_change,
            ip_binding=self.scenario.gateway.ip_binding,
            revoked_at=s.revoked_at if s else None,
            revoke_expected=s.revoke_expected if s else False,
        )
        return classify(facts, self.scenario.expect)

    def note_error(self, t: float, kind: str, rendition: str | None, message: str) -> None:
        self.log.error_total += 1
        self.log.errors.append(RequestRecord(t, self.spec.name, kind, rendition, 200, "", error=message))

    # ---- recovery ----------------------------------------------------------------------------------------
    async def _recover(self, reply: Reply) -> bool:
        """React to a refusal as a real player would; True means: retry the request once."""
        reason, s, t = reply.denial, self.session, self.now()
        if reason is None or s is None:
            return False
        if reason in SESSION_OVER and t >= s.ends_at:
            raise PlayerStopped("the session reached its maximum life", expected=True, state="ended")
        if reason == "revoked":
            expected = s.revoked_at is not None and s.revoke_expected
            raise PlayerStopped("the session was revoked", expected=expected, state="ended" if expected else "stopped")
        if reason == "ip":
            await self._recreate_after_ip_change(t)
        if reason in ("expired", "missing") and self.spec.renewal == "refresh":
            return await self.refresh(t, "expired_retry")
        return False

    async def _recreate_after_ip_change(self, t: float) -> None:
        if self.last_ip_change is None or self._ip_policy != "recreate" or self._recreated_for == self.last_ip_change:
            return
        self._recreated_for = self.last_ip_change
        await self.create_session(t, "new session after the client address changed")
        await self.load_master(t)
        raise Rebuilt

    # ---- the session API -----------------------------------------------------------------------------------
    async def create_session(self, t: float, why: str) -> None:
        reply = await self.api("POST", "/api/sessions", {"asset": self.scenario.asset}, auth=True)
        data = reply.json()
        if reply.status != 201 or "token" not in data:
            expected = self.last_denial_expected if reply.denial else False
            raise PlayerStopped(f"session refused: {reply.denial or reply.failure}", expected=expected)
        start = self.start_epoch
        self.session = Session(
            id=str(data["session_id"]),
            token=str(data["token"]),
            issued_at=t,
            expires_at=float(data["expires_at"]) - start,
            ends_at=float(data["session_ends_at"]) - start,
            created_at=t,
            refresh_url=str(data["refresh_url"]),
            mode=str(data.get("mode", "query")),
            playback_url=str(data["playback_url"]),
        )
        self.sessions += 1
        self.log.event(t, "session", f"{self.session.id} ({self.session.mode}): {why}")

    async def renew_ahead(self, t: float) -> None:
        s = self.session
        if self.spec.renewal != "refresh" or s is None or not s.can_refresh or s.expires_at >= s.ends_at:
            return  # a token that already lasts until the session's cap needs no refresh
        if t >= s.issued_at + REFRESH_AT * (s.expires_at - s.issued_at):
            await self.refresh(t, "ahead")

    async def refresh(self, t: float, trigger: str) -> bool:
        s = self.session
        if s is None or not s.can_refresh:
            return False
        reply = await self.api("POST", s.refresh_url, {"token": s.token})
        data = reply.json()
        if reply.status == 200 and "token" in data:
            s.token, s.issued_at, s.expires_at = str(data["token"]), t, float(data["expires_at"]) - self.start_epoch
            self.refreshes += 1
            self.log.event(t, "refresh", f"{trigger}: token until {s.expires_at:.0f} s")
            return True
        reason = reply.denial or reply.failure or "unknown"
        if reason in TERMINAL_REFRESH_ERRORS:
            s.can_refresh = False
            expected = self.last_denial_expected
            raise PlayerStopped(
                f"refresh refused: {reason}", expected=expected, state="ended" if expected else "stopped"
            )
        if reason == "ip":
            await self._recreate_after_ip_change(t)
        return False

    async def revoke(self, t: float, expected: bool) -> None:
        s = self.session
        if s is None:
            return
        reply = await self.api("DELETE", f"/api/sessions/{s.id}", {"token": s.token})
        if reply.status == 204:
            s.revoked_at, s.revoke_expected = t, expected
            self.log.event(t, "revoke", f"session {s.id} revoked ({'expected' if expected else 'NOT expected'})")
        else:
            self.note_error(t, "api", None, f"revoke answered {reply.status}")

    def change_ip(self, t: float, change: IpChange) -> None:
        if not self.http.can_change_ip:
            self.log.event(t, "note", f"client address change to {change.to} skipped: no --client-ip-header")
            return
        self.http.change_ip(change.to)
        self.last_ip_change, self._ip_policy = t, change.on_denial
        self.log.event(t, "ip_change", f"client address is now {change.to}")

    def stop(self, t: float, stop: PlayerStopped) -> None:
        self.state, self.stop_reason = stop.state, stop.reason
        self.log.event(t, "stop", f"{stop.reason} ({'expected' if stop.expected else 'unexpected'})")
