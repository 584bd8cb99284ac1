"""The entitlement webhook: the application's backend decides whether a viewer may watch a title.

    POST <webhook_url>
    content-type: application/json
    x-gateway-signature: t=<epoch seconds>;sig=<base64url HMAC-SHA256(secret, "<t>\\n" + body)>

    {"request_id": "…", "purpose": "create" | "refresh",
     "user": {"id": "u-1" | null, "credential": "<bearer>" | null},
     "asset": "/vod/title-9000/master.m3u8", "title_prefix": "/vod/title-9000/",
     "client": {"address": "203.0.113.7" | null, "country": "NL" | null}}

    200 {"allow": true | false, "reason": "…", "ttl_seconds": N, "user_id": "…"}   (reason, ttl, user_id optional)

`user.id` is set when the gateway knows the viewer (a `[[users]]` entry, or on refresh the id the session
carries), else `user.credential` is the bearer credential the viewer sent, for the backend to resolve; its
answer's `user_id` then names the viewer in the session's tokens. Verdicts are cached for `ttl_seconds`
(capped at `max_cache_seconds`; 0: not cached). A call that takes longer than `timeout_seconds`, cannot
connect, answers another status or an answer that is not this shape is an *error*: `on_error = "deny"`
refuses with `entitlements_unavailable` (503, Retry-After), `"allow"` lets the viewer in (never cached).
Concurrent questions with the same cache key share one call (a page opening several players, a burst of
retries): the backend sees one request, every waiter its answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.config import EntitlementSettings
from gateway.config_schema import OnError
from gateway.errors import EntitlementRefused, EntitlementsUnavailable, Refusal
from gateway.sessions.verdict_cache import Verdict, VerdictCache, VerdictKey, verdict_key
from gateway.sessions.webhook_auth import HEADER, webhook_signature
from gateway.tokens.grant import IPAddress

log = logging.getLogger("gateway.sessions.webhook")

MAX_ANSWER_BYTES = 16 * 1024  # read while it arrives: a backend cannot make the gateway buffer more
MAX_REASON_CHARS = 200
MAX_USER_ID_CHARS = 128


class WebhookFailure(Exception):
    """The backend gave no usable verdict (the message says why, naming no secret)."""


@dataclass(frozen=True, slots=True)
class Question:
    purpose: str  # "create" | "refresh"
    user_id: str | None
    credential: str | None
    asset: str  # on the origin: the master at create, the title prefix on refresh
    title_prefix: str  # on the origin: what the grant covers
    client_ip: IPAddress | None
    country: str | None
    request_id: str

    def body(self) -> bytes:
        return json.dumps(
            {
                "request_id": self.request_id,
                "purpose": self.purpose,
                "user": {"id": self.user_id, "credential": self.credential},
                "asset": self.asset,
                "title_prefix": self.title_prefix,
                "client": {"address": None if self.client_ip is None else str(self.client_ip), "country": self.country},
            },
            separators=(",", ":"),
        ).encode()


def printable(text: str, limit: int) -> str:
    """`text` fit to show a person: control and other unprintable characters as spaces, at most `limit`."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def parse_answer(data: bytes) -> tuple[Verdict, int]:
    """The verdict and its TTL from a 200 answer's body, or `WebhookFailure` saying what is wrong with it."""
    try:
        answer: Any = json.loads(data)
    except (ValueError, RecursionError):
        raise WebhookFailure("answered something that is not JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("allow"), bool):
        raise WebhookFailure('answered JSON without a boolean "allow"')
    reason, ttl, user_id = answer.get("reason", ""), answer.get("ttl_seconds", 0), answer.get("user_id")
    if not isinstance(reason, str):
        raise WebhookFailure('answered a "reason" that is not a string')
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl < 2**31:
        raise WebhookFailure('answered a "ttl_seconds" that is not a number of seconds')
    if user_id is not None and (
        not isinstance(user_id, str) or not user_id.isprintable() or not 0 < len(user_id) <= MAX_USER_ID_CHARS
    ):
        raise WebhookFailure(f'answered a "user_id" that is not 1 to {MAX_USER_ID_CHARS} printable characters')
    return Verdict(answer["allow"], printable(reason, MAX_REASON_CHARS), user_id), int(ttl)


class EntitlementWebhook:
    """Asks the backend (one pooled client), through the verdict cache, and applies `on_error`."""

    def __init__(self, settings: EntitlementSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.cache = VerdictCache(settings.cache_entries)
        self.calls = 0  # backend calls made (the cache's effect, for tests and metrics)
        self._pending: dict[VerdictKey, asyncio.Task[tuple[Verdict, int]]] = {}
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=settings.timeout_seconds,
            trust_env=False,  # the backend is where the config says, never via a proxy from the environment
            follow_redirects=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def decide(self, question: Question, *, now: float) -> Verdict:
        """The verdict for `question` if it allows; raises `not_entitled` with the backend's reason, or
        `entitlements_unavailable` (a failed call under `on_error = "deny"`)."""
        key = verdict_key(
            user_id=question.user_id,
            credential=question.credential,
            title_prefix=question.title_prefix,
            client_ip=question.client_ip,
            country=question.country,
        )
        verdict = self.cache.get(key, now)
        if verdict is None:
            try:
                verdict, ttl_seconds = await self._shared_call(key, question, now)
            except WebhookFailure as failure:
                log.warning(
                    "entitlement webhook failed: %s; on_error=%s request_id=%s",
                    failure,
                    self.settings.on_error.value,
                    question.request_id,
                )
                if self.settings.on_error is OnError.ALLOW:
                    return Verdict(True, "")
                raise EntitlementsUnavailable(f"the entitlement service {failure}; try again shortly") from None
            ttl_seconds = min(ttl_seconds, self.settings.max_cache_seconds)
            if ttl_seconds > 0:
                self.cache.put(key, verdict, now + ttl_seconds)
        if not verdict.allow:
            raise EntitlementRefused(Refusal.NOT_ENTITLED, verdict.reason or "the entitlement service refused")
        return verdict

    async def _shared_call(self, key: VerdictKey, question: Question, now: float) -> tuple[Verdict, int]:
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._call(question, now))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a viewer who hangs up does not cancel the call the other waiters share.
        return await asyncio.shield(task)

    def _forget(self, key: VerdictKey, done: asyncio.Task[tuple[Verdict, int]]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a failure nobody waited for any more is not reported as lost

    async def _call(self, question: Question, now: float) -> tuple[Verdict, int]:
        self.calls += 1
        body = question.body()
        headers = {"content-type": "application/json", HEADER: webhook_signature(self.settings.secret, body, now=now)}
        timeout = self.settings.timeout_seconds
        try:
            async with asyncio.timeout(timeout):  # the whole exchange, however slowly an answer drips
                request = self.client.build_request("POST", self.settings.webhook_url, content=body, headers=headers)
                response = await self.client.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        raise WebhookFailure(f"answered HTTP {response.status_code}")
                    data = await _read_limited(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise WebhookFailure(f"did not answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise WebhookFailure(f"could not be reached ({type(exc).__name__})") from None
        return parse_answer(data)


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise WebhookFailure(f"answered more than {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
