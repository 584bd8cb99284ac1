"""The player's network side: requests (one httpx client per client address), cookies, and token bookkeeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from gateway.errors import TokenDenied
from gateway.replay.events import PlayerLog, TokenSpan
from gateway.tokens.cookies import parse_set_cookie
from gateway.tokens.grant import Grant
from gateway.tokens.native import inspect_token

MAX_INSPECTED = 8192


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # 0: no HTTP answer (transport error)
    headers: Mapping[str, str]
    set_cookies: tuple[str, ...]
    body: bytes
    transport_error: str | None = None

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def denial(self) -> str | None:
        """The typed reason of a 401/403 (the edge's `x-token-denial`, else the JSON `error`)."""
        if self.status not in (401, 403):
            return None
        return self.headers.get("x-token-denial") or str(self.json().get("error") or f"http_{self.status}")

    @property
    def failure(self) -> str | None:
        """Why a non-denial request failed (None when it succeeded)."""
        if self.transport_error:
            return self.transport_error
        if self.status >= 400 and self.denial is None:
            return self.headers.get("x-gateway-error") or str(self.json().get("error") or f"http_{self.status}")
        return None


class Sender(Protocol):
    """One client address's way to the gateway."""

    async def __call__(self, method: str, url: str, headers: dict[str, str], body: object) -> Reply: ...

    async def aclose(self) -> None: ...


class HttpxSender:
    """Requests through an `httpx.AsyncClient` (realtime, or simulate's `player_transport="httpx"`)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, method: str, url: str, headers: dict[str, str], body: object) -> Reply:
        try:
            response = await self.client.request(method, url, headers=headers, json=body)
        except httpx.HTTPError as exc:
            return Reply(0, {}, (), b"", f"transport:{type(exc).__name__}")
        finally:
            self.client.cookies.clear()  # the player's CookieJar decides what is sent (Max-Age, Path), not httpx
        return Reply(
            response.status_code, response.headers, tuple(response.headers.get_list("set-cookie")), response.content
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class AsgiSender:
    """Requests straight into an in-process ASGI app: what httpx's ASGITransport does, minus the client.

    A simulated player makes ~10^4-10^5 requests; httpx's client layer (URL validation, cookie-jar
    extraction, request/response models) costs about as much as the gateway's own work per request, so
    the simulated players skip it. The ASGI messages are the same ones a server would send.
    """

    def __init__(self, app: Any, client: tuple[str, int], host: str) -> None:
        self.app, self.client, self.host = app, client, host.encode("latin-1")

    async def __call__(self, method: str, url: str, headers: dict[str, str], body: object) -> Reply:
        parts = urlsplit(url)
        payload = b"" if body is None else json.dumps(body).encode()
        raw_headers = [(b"host", self.host)] + [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        if body is not None:
            raw_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": parts.scheme,
            "path": unquote(parts.path),
            "raw_path": parts.path.encode("latin-1"),
            "query_string": parts.query.encode("latin-1"),
            "root_path": "",
            "headers": raw_headers,
            "client": self.client,
            "server": (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)),
        }
        done = asyncio.Event()
        started: dict[str, Any] = {}
        chunks: list[bytes] = []
        sent_request = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        except Exception as exc:  # the gateway crashed: what a server would answer (500), with the reason
            if not started:
                return Reply(500, {}, (), b"", f"app_error:{type(exc).__name__}")
        finally:
            done.set()
        headers_out = httpx.Headers(started.get("headers", []))
        return Reply(
            int(started.get("status", 500)), headers_out, tuple(headers_out.get_list("set-cookie")), b"".join(chunks)
        )

    async def aclose(self) -> None:
        return None


class HttpSide:
    """Sends the player's requests; each client address gets its own sender (simulate)."""

    def __init__(
        self,
        make_sender: Callable[[str], Sender],
        ip: str,
        *,
        ip_header: str | None = None,
        can_change_ip: bool = True,
    ) -> None:
        self._make_sender = make_sender
        self._senders: dict[str, Sender] = {}
        self.ip = ip
        self.ip_header = ip_header  # realtime: announce the address in a header the gateway trusts
        self.can_change_ip = can_change_ip or ip_header is not None

    def change_ip(self, ip: str) -> None:
        self.ip = ip

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: object = None
    ) -> Reply:
        sender = self._senders.get(self.ip)
        if sender is None:
            sender = self._senders[self.ip] = self._make_sender(self.ip)
        sent = dict(headers or {})
        if self.ip_header:
            sent[self.ip_header] = self.ip
        return await sender(method, url, sent, body)

    async def aclose(self) -> None:
        for sender in self._senders.values():
            await sender.aclose()
        self._senders.clear()


@dataclass
class CookieJar:
    """A browser's view of the gateway's cookies: Max-Age counts, expired cookies are not sent."""

    values: dict[str, tuple[str, float, str]] = field(default_factory=dict)  # name -> (value, expires at, path)

    def update(self, set_cookies: tuple[str, ...], now: float) -> None:
        for header in set_cookies:
            cookie = parse_set_cookie(header)
            if cookie is None:
                continue
            max_age = cookie.attributes.get("max-age", "")
            expires = now + float(max_age) if max_age.isdigit() else float("inf")
            self.values[cookie.name] = (cookie.value, expires, cookie.attributes.get("path") or "/")

    def _sent(self, now: float, path: str) -> list[tuple[str, str]]:
        return [(n, v) for n, (v, expires, prefix) in self.values.items() if expires > now and path.startswith(prefix)]

    def header(self, now: float, path: str = "/") -> str | None:
        """The Cookie header for a request to `path` (Path-matched, expired cookies dropped)."""
        return "; ".join(f"{name}={value}" for name, value in self._sent(now, path)) or None

    def token(self, now: float, path: str = "/") -> str | None:
        """The first cookie sent to `path` whose value decodes as a gateway token."""
        return next((value for _, value in self._sent(now, path) if inspect(value) is not None), None)


_inspected: dict[str, Grant | None] = {}


def inspect(token: str) -> Grant | None:
    """The token's claims, read without verifying (None if it is not the gateway's format); cached."""
    if token in _inspected:
        return _inspected[token]
    if len(_inspected) >= MAX_INSPECTED:
        _inspected.clear()
    try:
        grant: Grant | None = inspect_token(token)
    except TokenDenied:
        grant = None
    _inspected[token] = grant
    return grant


def token_in_url(url: str, param: str) -> str | None:
    query = urlsplit(url).query
    prefix = param + "="
    for pair in query.split("&"):
        if pair.startswith(prefix):
            return pair[len(prefix) :]
    return None


def with_token(url: str, param: str, token: str) -> str:
    """`url` with its `param` replaced by `token` (every other query byte kept), like the demo's xhrSetup."""
    parts = urlsplit(url)
    prefix = param + "="
    pairs = [f"{prefix}{token}" if p.startswith(prefix) else p for p in parts.query.split("&") if p]
    if not any(p.startswith(prefix) for p in pairs):
        pairs.insert(0, prefix + token)
    return urlunsplit(parts._replace(query="&".join(pairs)))


class TokenBook:
    """Every token a player used: its kind (by scope/source), its lifetime, and whether it is a renewal."""

    def __init__(self, log: PlayerLog, start_epoch: float) -> None:
        self._log = log
        self._start = start_epoch
        self._latest: dict[tuple[str | None, str], str] = {}  # (session, kind) -> newest token

    def note(self, token: str, t: float, *, cookie: bool) -> tuple[str | None, float | None, bool]:
        """(kind, expiry in scenario seconds, renewal?) for a token used at `t`."""
        span = self._log.tokens.get(token)
        if span is not None:
            span.last_used = t
            return span.kind, span.expires, False
        grant = inspect(token)
        if grant is None:
            return None, None, False
        kind = "cookie" if cookie else ("session" if grant.scope.value == "all" else grant.scope.value)
        expires = grant.expires_at - self._start
        self._log.tokens[token] = TokenSpan(kind, grant.session_id, t, expires, t)
        key = (grant.session_id, kind)
        renewal = kind != "playlist" and key in self._latest
        self._latest[key] = token
        return kind, expires, renewal
